"""L_d (SOCKET eq. 3): match the target batch's BatchNorm statistics to the sources' stored
running statistics, ζ-weighted across the sources."""

from __future__ import annotations

import math

import torch
from torch import nn

from socket_edge.adapt.choices import BN_DISTANCES, REDUCTIONS

EPS = 1e-5
SQRT_EPS = 1e-12  # keeps the norm's gradient finite where a difference is exactly 0


class BNStatsLoss(nn.Module):
    """Eq. 3: Σ_l ‖Σ_k ζ_k μ^t_{k,l} − Σ_k ζ_k μ^s_{k,l}‖ + ‖Σ_k ζ_k σ²^t_{k,l} − Σ_k ζ_k σ²^s_{k,l}‖.

    Inputs, per member k: batch_stats[k] and source_stats[k], lists over BN layers l of
    (mean C_l, var C_l) — the target batch's statistics at each layer of f_k, and the
    ORIGINAL source model's running statistics (a snapshot taken before adaptation, so
    the running statistics that adaptation updates never serve as the reference);
    zeta: K weights summing to 1. Output: scalar.

    Each member is combined with the others at the same layer, with its own statistics
    (the official code compared every model with one shared list). Members with a
    different BN layout (other architectures) form their own group, weighted by the
    group's share of ζ. reduction "sum" over layers is the paper's; "mean" divides by
    the number of layers used. fraction < 1 uses only the first ⌈fraction·L⌉ layers (from the
    input), where the modalities' low-level statistics differ most. Which layers the statistics come
    from is the caller's (model.aligned_layers: Eq. 3's are the BatchNorms after convolutions).
    distance, per layer:
    - "norm" (Eq. 3): the unsquared L2 norms of the mean and of the variance differences; each layer's
      gradient is a unit vector in its statistics, whatever the size of the mismatch;
    - "sq": both norms squared (the default until issue 22, and NOT the paper's): the gradient is 2‖Δ‖
      times Eq. 3's, so the few layers with large variances dominate (in ImageNet MobileNetV2 three of
      52 BN layers hold 96 % of Σ‖σ²‖²) and it grows with the mismatch (reaches 1e5 and inf);
    - "kl": the Gaussian KL divergence per channel, averaged over channels: scale-free, zero when the
      statistics agree (socket-plus's earlier preset)."""

    def __init__(self, groups: list[list[int]], reduction: str = "sum", fraction: float = 1.0,
                 distance: str = "norm") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if distance not in BN_DISTANCES:
            raise ValueError(f"distance must be one of {BN_DISTANCES}, got {distance!r}")
        self.groups = groups
        self.reduction = reduction
        self.fraction = fraction
        self.distance = distance

    def _distance(self, mean_t: torch.Tensor, var_t: torch.Tensor, mean_s: torch.Tensor,
                  var_s: torch.Tensor) -> torch.Tensor:
        if self.distance == "norm":
            return _norm(mean_t - mean_s) + _norm(var_t - var_s)
        if self.distance == "sq":
            return ((mean_t - mean_s) ** 2).sum() + ((var_t - var_s) ** 2).sum()
        var_t, var_s = var_t + EPS, var_s + EPS  # "kl": KL(N(μ_t, σ²_t) ‖ N(μ_s, σ²_s)), mean over channels
        kl = 0.5 * (var_t / var_s + (mean_t - mean_s) ** 2 / var_s - 1 + torch.log(var_s / var_t))
        return kl.mean()

    def forward(self, batch_stats: list[list[tuple[torch.Tensor, torch.Tensor]]],
                source_stats: list[list[tuple[torch.Tensor, torch.Tensor]]], zeta: torch.Tensor) -> torch.Tensor:
        total = 0
        for group in self.groups:
            share = zeta[group].sum()
            weights = zeta[group] / share
            layers = math.ceil(self.fraction * len(source_stats[group[0]]))
            group_loss = 0
            for layer in range(layers):
                mean_t, var_t = (sum(w * batch_stats[k][layer][i] for w, k in zip(weights, group)) for i in (0, 1))
                mean_s, var_s = (sum(w * source_stats[k][layer][i] for w, k in zip(weights, group)) for i in (0, 1))
                group_loss = group_loss + self._distance(mean_t, var_t, mean_s, var_s)
            if self.reduction == "mean":
                group_loss = group_loss / max(1, layers)
            total = total + share * group_loss
        return total


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((x ** 2).sum() + SQRT_EPS)


def aligned_layers(module: nn.Module, scope: str = "conv") -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers whose statistics L_d matches, in order: "conv", those after convolutions
    (BatchNorm2d, Eq. 3's), or "all", also the BatchNorm1d of the bottleneck (the earlier form)."""
    kind = nn.BatchNorm2d if scope == "conv" else nn.modules.batchnorm._BatchNorm
    return [m for m in module.modules() if isinstance(m, kind)]


def bn_layout(module: nn.Module) -> tuple[tuple[str, int], ...]:
    """(name, channels) of every BatchNorm layer: members with equal layouts are grouped."""
    return tuple((name, m.num_features) for name, m in module.named_modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm))


def group_by_layout(members: list[nn.Module]) -> list[list[int]]:
    """Indices of members that share a BN layout, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, member in enumerate(members):
        groups.setdefault(bn_layout(member), []).append(i)
    return list(groups.values())
