"""The in-graph half of the input contract, as an nn.Module: unit scaling, clipping,
invalid pixels, channel replication, mean/std. PyTorch, ONNX Runtime and TensorRT
all compute this same function because it is part of the exported graph."""

from __future__ import annotations

import torch
from torch import nn

from socket_edge.contract import InputContract


class InputNormalizer(nn.Module):
    """Raw float32 N×C_raw×H×W (contract units) → normalised N×C×H×W network input."""

    def __init__(self, contract: InputContract) -> None:
        super().__init__()
        self.invalid_zero = contract.invalid_zero
        self.replicate = contract.channels // contract.raw_channels
        lo, hi = contract.valid_range
        self.register_buffer("unit", torch.tensor(float(contract.unit)), persistent=False)
        self.register_buffer("lo", torch.tensor(float(lo)), persistent=False)
        self.register_buffer("span", torch.tensor(float(hi - lo)), persistent=False)
        self.register_buffer("fill", torch.tensor(float(contract.invalid_fill)), persistent=False)
        self.register_buffer("mean", torch.tensor(contract.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(contract.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        value = ((raw * self.unit - self.lo) / self.span).clamp(0.0, 1.0)
        if self.invalid_zero:
            value = torch.where(raw <= 0, self.fill, value)
        if self.replicate > 1:
            value = value.repeat(1, self.replicate, 1, 1)
        return (value - self.mean) / self.std
