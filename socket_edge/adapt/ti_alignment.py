"""L_TI (SOCKET eq. 2): pull the encoders' features of target-modality TI images towards the
frozen source encoders' features of the paired source-modality TI images."""

from __future__ import annotations

import torch
from torch import nn

from socket_edge.adapt.choices import DISTANCES


class TIAlignmentLoss(nn.Module):
    """Σ_k ζ_k · mean_i d(f_k(x_i^target), ψ_k(x_i^source)).

    Inputs: target_feats and source_feats, one N×D_k tensor per member (source_feats
    fixed, computed once with the original encoder); zeta: K weights summing to 1.
    Output: scalar. Distance d:
    - "sum_sq": ‖a − b‖², the paper's literal form; with 256-d features of norm² ≈ 300 it is
      ~1000× the other terms and diverges at the paper's λ (docs/benchmarks.md);
    - "mean_sq" (default): ‖a − b‖² / D, the per-dimension mean, on the scale of the other terms;
    - "norm": ‖a − b‖, unsquared."""

    def __init__(self, distance: str = "mean_sq") -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        self.distance = distance

    def forward(self, target_feats: list[torch.Tensor], source_feats: list[torch.Tensor],
                zeta: torch.Tensor) -> torch.Tensor:
        total = 0
        for z, a, b in zip(zeta, target_feats, source_feats):
            sq = ((a.float() - b.float()) ** 2).sum(dim=1)
            if self.distance == "mean_sq":
                d = sq / a.shape[1]
            elif self.distance == "norm":
                d = torch.sqrt(sq + 1e-12)
            else:
                d = sq
            total = total + z * d.mean()
        return total
