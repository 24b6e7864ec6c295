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
           ("--opset", "--batch", "--dynamic-batch", "--fp16", "--prune-zeta", "--check-data"),
           "one ONNX graph (ONNX Runtime on CPU, CUDA or TensorRT; portable)"),
    Format("engine", ".engine", True,
           ("--opset", "--batch", "--dynamic-batch", "--fp16", "--int8", "--calib", "--prune-zeta", "--check-data"),
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
    if fmt.name == "engine" and given.get("--int8"):
        raise UsageError("int8 engines come from a Q/DQ int8 ONNX graph, which socket-edge cannot write yet; "
                         "export the engine in fp32 or with --fp16")
    if given.get("--int8") and not given.get("--calib"):
        raise UsageError("--int8 needs --calib DIR: target images to calibrate the int8 ranges on")
    if given.get("--calib") and not given.get("--int8"):
        raise UsageError("--calib DIR is only used with --int8; add --int8 or drop --calib")
    return fmt
