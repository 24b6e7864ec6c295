"""The one table of export formats: name, file suffix, whether building needs a GPU, and the
options each takes. It drives the validation of `socket-edge export` options (standard library only)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from socket_edge.errors import UsageError


@dataclass(frozen=True)
class Format:
    """One export format."""

    name: str
    suffix: str
    needs_gpu: bool
    options: tuple[str, ...]
    description: str


FORMATS: tuple[Format, ...] = (
    Format("onnx", ".onnx", False,
           ("--opset", "--batch", "--dynamic-batch", "--fp16", "--int8", "--calib", "--calib-frames", "--calib-method",
            "--int8-scheme", "--prune-zeta", "--check-data"),
           "one ONNX graph (ONNX Runtime on CPU, CUDA or TensorRT; portable)"),
    Format("engine", ".engine", True,
           ("--opset", "--batch", "--dynamic-batch", "--fp16", "--int8", "--calib", "--calib-frames", "--calib-method",
            "--prune-zeta", "--check-data"),
           "a TensorRT 10/11 plan and its sidecar, built on (and only for) the GPU that will run it"),
)
ALWAYS = ("--out", "--format")  # options every format takes


def get_format(name: str) -> Format:
    """The format called `name`, or a usage error with a did-you-mean."""
    names = [f.name for f in FORMATS]
    for fmt in FORMATS:
        if fmt.name == name.lower():
            return fmt
    close = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise UsageError(f"unknown export format {name!r} (formats: {', '.join(names)}){hint}")


def validate(name: str, given: Mapping[str, object]) -> Format:
    """Check the options the user gave (flag → value; None or False means not given) against the
    format's row of the table; refuse an option the format does not take."""
    fmt = get_format(name)
    for flag, value in given.items():
        if value is None or value is False or flag in ALWAYS:
            continue
        if flag not in fmt.options:
            raise UsageError(f"the {fmt.name} format does not take {flag} (it takes: {', '.join(fmt.options)})")
    if given.get("--batch") is not None and given.get("--dynamic-batch") is not None:
        raise UsageError("--batch and --dynamic-batch exclude each other: a fixed batch or a range, not both")
    if given.get("--fp16") and given.get("--int8"):
        raise UsageError("--fp16 and --int8 exclude each other: pick one precision")
    if given.get("--int8") and not given.get("--calib"):
        raise UsageError("--int8 needs --calib DIR: target images (the camera's modality, class folders or flat) "
                         "to calibrate the int8 ranges on")
    for flag in ("--calib", "--calib-frames", "--calib-method", "--int8-scheme"):
        if given.get(flag) is not None and not given.get("--int8"):
            raise UsageError(f"{flag} is only used with --int8; add --int8 or drop {flag}")
    return fmt
