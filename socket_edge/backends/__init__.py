"""A model file one can predict with, chosen by its type: .onnx (ONNX Runtime), .engine
(TensorRT) or .pt (PyTorch). The one place that dispatches on a model file's suffix; eval,
inspect, run and bench open their models here.

Every backend's model has `backend` (its name), `name` (the file, for messages), `contract`,
`detail` (providers or device), `predict(raw N×C×H×W, batch_size, progress) -> N×classes`
and `with_contract`. Only the .pt backend imports torch, and only when a .pt is opened: an
edge install (`pip install socket-edge[cpu]`) runs .onnx and .engine files without it.

    model = open_model("model.onnx", providers="cpu", threads=2)
    probs = model.predict(prepare(frame, model.contract)[None])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np

from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError, require

@dataclass(frozen=True)
class Options:
    """How to open a model. providers, threads, spinning: ONNX Runtime only (see backends.onnx);
    device (auto, cpu or cuda): PyTorch's device, and ONNX Runtime's provider when none is named."""

    providers: str | list[str] | None = None
    threads: int | None = None
    spinning: bool = True
    device: str = "auto"


class Model(Protocol):
    """A loaded model file."""

    backend: str  # "onnxruntime", "tensorrt", "pytorch"
    name: str     # the file, for messages

    @property
    def contract(self) -> InputContract: ...

    @property
    def detail(self) -> str: ...

    def predict(self, raw: np.ndarray, batch_size: int | None = None, progress: bool = False) -> np.ndarray: ...

    def with_contract(self, contract: InputContract) -> "Model": ...


def backend_for(path: Path) -> ModuleType:
    """The backend module of a model file, by suffix; each has `open_model(path, options)` and
    `summarize(path)`. Refuses an unknown suffix, or a .pt where the training extra is missing."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from socket_edge.backends import onnx as backend
    elif suffix == ".engine":
        from socket_edge.backends import engine as backend
    elif suffix == ".pt":
        require("torch", "train", needed_by=f"a .pt model ({path.name})")
        from socket_edge.backends import pt as backend
    else:
        raise ArtifactError(f"{path} is not a model file socket-edge can use; give an exported .onnx, a TensorRT "
                            ".engine (socket-edge export --format engine) or a .pt artifact")
    if not path.is_file():
        raise ArtifactError(f"model file {path} does not exist")
    return backend


def open_model(path: str | Path, *, providers: str | list[str] | None = None, threads: int | None = None,
               spinning: bool = True, device: str = "auto") -> Model:
    """The model in a file, in the backend for its type."""
    path = Path(path)
    return backend_for(path).open_model(path, Options(providers, threads, spinning, device))


def summarize(path: str | Path) -> dict:
    """JSON-able summary of a model file for `inspect`: contract, members, ζ, provenance (and, for
    exported files, the graph's inputs and outputs and the export provenance); no weights used."""
    path = Path(path)
    return backend_for(path).summarize(path)
