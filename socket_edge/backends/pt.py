"""The .pt backend: a socket-edge model artifact through PyTorch, for development and for
evaluating the unadapted cross-modal baseline (`with_contract`). The only backend that imports
torch; the registry imports it only when a .pt is opened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from socket_edge.backends import Options
from socket_edge.contract import InputContract
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.torch_utils import predict, resolve_device

BATCH = 64  # frames per forward pass when the caller names none


class TorchModel:
    """An artifact's Ensemble on a torch device."""

    backend = "pytorch"

    def __init__(self, ensemble: Ensemble, device: torch.device, name: str) -> None:
        self.ensemble, self.device, self.name = ensemble, device, name

    @property
    def contract(self) -> InputContract:
        return self.ensemble.contract

    @property
    def detail(self) -> str:
        return str(self.device)

    def with_contract(self, contract: InputContract) -> "TorchModel":
        """The same weights fed another contract's inputs, normalised the way the model normalised its own."""
        return TorchModel(self.ensemble.with_contract(contract), self.device, self.name)

    def predict(self, raw: np.ndarray, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Class probabilities (N×classes, float32) of raw frames (N×C×H×W in contract units)."""
        frames = np.ascontiguousarray(raw, dtype=np.float32)
        probs = predict(self.ensemble, frames, self.device, batch_size or BATCH, progress=progress)
        return probs.astype(np.float32, copy=False)


def open_model(path: Path, options: Options) -> TorchModel:
    """The registry's entry (socket_edge.backends.open_model) for .pt files."""
    model, _ = artifact.load(path)
    return TorchModel(model, resolve_device(options.device), str(path))


def summarize(path: Path) -> dict:
    """`inspect`'s summary of an artifact: its dict without the weights, members with parameter counts."""
    data = artifact.read(path)
    return {
        "file": str(path), "size_bytes": path.stat().st_size, "format": f"{data['format']} v{data['format_version']}",
        "kind": data["kind"], "contract": data["contract"],
        "members": [artifact.member_summary(member) for member in data["members"]], "zeta": data["zeta"],
        "provenance": data["provenance"],
    }
