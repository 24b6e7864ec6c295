"""Inference backends behind one interface: `contract`, `name`, `predict(raw N×C×H×W) -> N×classes`.

.onnx → ONNX Runtime (runtime.onnx_model.OnnxModel); .engine → TensorRT (export.tensorrt.EngineModel);
.pt → PyTorch, for development only, through evaluation.open_model. The last two are imported by
module name inside `open_backend`, so that this package never imports torch (a Jetson runtime
image carries none, and only the .pt path needs it)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError
from socket_edge.runtime.onnx_model import OnnxModel

SUFFIXES = (".onnx", ".engine", ".pt")


@dataclass
class Backend:
    """A loaded model: `runner.predict(raw, batch_size)` gives probabilities."""

    name: str            # "onnxruntime", "tensorrt", "pytorch"
    detail: str          # providers or device, for the summary
    contract: InputContract
    runner: Any

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(self.runner.predict(raw, len(raw)), dtype=np.float32)


class _TorchRunner:
    """evaluation.open_model's PyTorch model with OnnxModel's predict signature."""

    def __init__(self, model) -> None:
        self.model = model
        self.contract = model.contract

    def predict(self, raw: np.ndarray, batch_size: int) -> np.ndarray:
        return self.model.predict(raw, batch_size, False)


def open_backend(path: str | Path, *, providers: str | list[str] | None = None, threads: int | None = 2,
                 spinning: bool = True, device: str = "auto") -> Backend:
    """The backend for a model file, chosen by its suffix. threads and spinning: ONNX Runtime only."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        model = OnnxModel(path, providers=providers, threads=threads, spinning=spinning)
        return Backend("onnxruntime", ",".join(p.replace("ExecutionProvider", "") for p in model.providers),
                       model.contract, model)
    if suffix == ".engine":
        model = importlib.import_module("socket_edge.export.tensorrt").EngineModel(path)
        return Backend("tensorrt", "engine", model.contract, model)
    if suffix == ".pt":
        model = importlib.import_module("socket_edge.evaluation").open_model(path, device)
        return Backend("pytorch", str(model.device), model.contract, _TorchRunner(model))
    raise ArtifactError(f"{path} is not a model file run can use; give an exported .onnx, a TensorRT .engine "
                        "(socket-edge export --format engine) or a .pt artifact")
