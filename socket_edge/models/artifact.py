"""Model artifacts: one .pt file of plain data and tensors, read with
torch.load(weights_only=True), written atomically.

    {"format": "socket-edge-model", "format_version": 1, "kind": "source" | "ensemble",
     "contract": {...}, "zeta": [...], "members": [{"config": {...}, "state_dict": {...}}],
     "provenance": {...}}

Version 2 adds a member config's `dropped_blocks`; an artifact without dropped blocks is still
written as version 1, so that older socket-edge reads it, and refuses the others by name.
"""

from __future__ import annotations

import dataclasses
import io
import json
import platform
import time
from pathlib import Path

import torch

from socket_edge import atomic, jsontext
from socket_edge.contract import InputContract, number_problem
from socket_edge.errors import ArtifactError, SocketEdgeError
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.torch_utils import load_tensors
from socket_edge.models.zoo import ModelConfig, SourceModel, build

FORMAT = "socket-edge-model"
FORMAT_VERSION = 2
KINDS = ("source", "ensemble")


def versions() -> dict:
    """Versions of the software that made an artifact."""
    import numpy
    import torchvision

    from socket_edge import __version__

    return {
        "socket_edge": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": numpy.__version__, "python": platform.python_version(),
    }


def provenance(command: str | None = None, **fields) -> dict:
    """A provenance block: the command line the caller ran (None: called as a library), versions,
    time, host, plus the caller's fields."""
    return {
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "versions": versions(),
        **fields,
    }


def plain(data: dict) -> dict:
    """JSON-compatible copy (numpy scalars and tuples become Python numbers and lists), so that
    provenance loads with weights_only=True and fits ONNX metadata."""
    def convert(value: object) -> object:
        if hasattr(value, "item"):
            return value.item()
        raise TypeError(f"provenance value {value!r} is not plain data")

    return json.loads(jsontext.dumps(data, default=convert))


def to_artifact(model: Ensemble, kind: str, prov: dict) -> dict:
    """The artifact dict of an ensemble (plain data and CPU tensors)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    return {
        "format": FORMAT,
        "format_version": 2 if any(m.config.dropped_blocks for m in model.members) else 1,
        "kind": kind,
        "contract": model.contract.to_dict(),
        "zeta": [float(z) for z in model.zeta],
        "members": [
            {"config": m.config.to_dict(), "state_dict": {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}}
            for m in model.members
        ],
        "provenance": plain(prov),
    }


def save(model: Ensemble, path: str | Path, kind: str, prov: dict) -> Path:
    """Write the artifact atomically."""
    return torch_save(to_artifact(model, kind, prov), path)


def torch_save(obj: object, path: str | Path) -> Path:
    """torch.save into memory, then to `path` atomically: a failed write (a full disk) is then an
    OSError that `atomic` reports, not torch's "unexpected pos" after a short write."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic.write_bytes(path, [buffer.getbuffer()])


def read(path: str | Path) -> dict:
    """Load and validate an artifact dict (no model built)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file {path} does not exist")
    if path.stat().st_size == 0:
        raise ArtifactError(f"model file {path} is empty (0 bytes); was its writing interrupted? Re-create it")
    refuse_exported(path)
    data = load_tensors(path, "a socket-edge artifact",
                        "Re-create it with socket-edge train-source, adapt or distill")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(
            f"{path} is a PyTorch file but not a socket-edge model; a plain state dict can be used as "
            "--weights FILE for train-source"
        )
    version = data.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArtifactError(f"{path} has format_version {version!r} ({type(version).__name__}), not a whole number: "
                            "it was not written by socket-edge or was edited; re-create it")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{path} has model format {version}, newer than this socket-edge reads ({FORMAT_VERSION}); "
                            "upgrade socket-edge")
    for key in ("kind", "contract", "zeta", "members", "provenance"):
        if key not in data:
            raise ArtifactError(f"{path} lacks '{key}'; the file is damaged, re-create it")
    check_structure(data, path)
    return data


def _damaged(path: Path, what: str) -> ArtifactError:
    return ArtifactError(f"{path} is damaged: {what}; it was edited or not written by socket-edge: re-create it")


def check_structure(data: dict, path: Path) -> None:
    """Every field of an artifact dict of the right type, size and range (the one check of a .pt's
    structure, before anything is built from it): one ArtifactError naming the file and the field."""
    if not isinstance(data["kind"], str) or data["kind"] not in KINDS:
        raise _damaged(path, f"its kind is {data['kind']!r}, not one of {', '.join(KINDS)}")
    try:
        contract = InputContract.from_dict(data["contract"])
    except SocketEdgeError as exc:
        raise _damaged(path, str(exc)) from None
    members = data["members"]
    if not isinstance(members, list) or not members:
        raise _damaged(path, f"its members are {type(members).__name__} {_short(members)}, not a list of models")
    for i, member in enumerate(members):
        config = member_config(member, f"{path} member {i}")
        if config.num_classes != len(contract.class_names):
            raise _damaged(path, f"member {i} has {config.num_classes} classes but its contract names "
                                 f"{len(contract.class_names)}")
        bad = next((k for k, v in member["state_dict"].items()
                    if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
        if bad is not None:
            raise _damaged(path, f"member {i}'s weight {_short(bad)} is not a named tensor")
    zeta = data["zeta"]
    if not isinstance(zeta, list) or len(zeta) != len(members):
        raise _damaged(path, f"ζ is {_short(zeta)}, not a list of {len(members)} weights (one per member)")
    problem = next((p for p in (number_problem(z, 0, 1) for z in zeta) if p), None)
    if problem or not sum(zeta) > 0:
        raise _damaged(path, f"a ζ weight {problem}" if problem else f"ζ {zeta} sums to 0")
    if not isinstance(data["provenance"], dict):
        raise _damaged(path, f"its provenance is {type(data['provenance']).__name__}, not a mapping")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def refuse_exported(path: Path) -> None:
    """An ArtifactError for a file that export wrote (an .onnx or an .engine, by suffix)."""
    kind = {".engine": "TensorRT engine", ".onnx": "ONNX graph"}.get(path.suffix)
    if kind:
        raise ArtifactError(f"{path} is an exported {kind}, not a model artifact (.pt); export, adapt and distill "
                            f"take the .pt it was exported from (socket-edge inspect {path} names it)")


def member_config(member: object, where: str) -> ModelConfig:
    """A member's ModelConfig, or an ArtifactError naming what is wrong with the stored one."""
    config = member.get("config") if isinstance(member, dict) else None
    if not isinstance(config, dict) or not isinstance(member.get("state_dict"), dict):
        raise ArtifactError(f"{where} lacks its config or weights; the file is damaged, re-create it")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(str(key) for key in set(config) - known)
    if unknown:
        raise ArtifactError(f"{where} has an unknown config key {unknown[0]!r} (known: {', '.join(sorted(known))}); "
                            "it was written by a newer socket-edge or edited: upgrade socket-edge or re-create it")
    try:
        return ModelConfig(**{str(k): v for k, v in config.items()})
    except (TypeError, SocketEdgeError) as exc:
        raise ArtifactError(f"{where} has a config this socket-edge cannot build: {exc}") from None


def build_members(data: dict, path: str | Path = "the model") -> list[SourceModel]:
    """Rebuild each member's modules from its config (checked by `read`) and load its weights."""
    members = []
    for i, member in enumerate(data["members"]):
        config = ModelConfig(**member["config"])
        model = build(config)
        try:
            model.load_state_dict(member["state_dict"])
        except RuntimeError as exc:  # torch's message: a header line, then what is missing or of another size
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__
            raise _damaged(Path(path), f"member {i}'s weights do not fit its {config.arch} config "
                                       f"({detail[:160]})") from None
        members.append(model)
    return members


def member_summary(member: dict) -> dict:
    """A member of an artifact dict as its config plus its parameter count (no weights)."""
    params = sum(int(t.numel()) for k, t in member["state_dict"].items() if not k.endswith("num_batches_tracked"))
    return {**member["config"], "parameters": params}


def load(path: str | Path) -> tuple[Ensemble, dict]:
    """Load an artifact as an Ensemble in eval mode, plus the raw dict (provenance etc.)."""
    data = read(path)
    model = Ensemble(InputContract.from_dict(data["contract"]), build_members(data, path), data["zeta"])
    return model.eval(), data
