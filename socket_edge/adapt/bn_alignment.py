"""L_d (SOCKET eq. 3): match the target batch's BatchNorm statistics to the sources' stored
running statistics, ζ-weighted across the sources."""

from __future__ import annotations

import math

import torch
from torch import nn

from socket_edge.adapt.choices import REDUCTIONS


class BNStatsLoss(nn.Module):
    """Σ_l ‖Σ_k ζ_k μ^t_{k,l} − Σ_k ζ_k μ^s_{k,l}‖² + ‖Σ_k ζ_k σ²^t_{k,l} − Σ_k ζ_k σ²^s_{k,l}‖².

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
    input), where the modalities' low-level statistics differ most."""

    def __init__(self, groups: list[list[int]], reduction: str = "sum", fraction: float = 1.0) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.groups = groups
        self.reduction = reduction
        self.fraction = fraction

    def forward(self, batch_stats: list[list[tuple[torch.Tensor, torch.Tensor]]],
                source_stats: list[list[tuple[torch.Tensor, torch.Tensor]]], zeta: torch.Tensor) -> torch.Tensor:
        total = 0
        for group in self.groups:
            share = zeta[group].sum()
            weights = zeta[group] / share
            layers = math.ceil(self.fraction * len(source_stats[group[0]]))
            group_loss = 0
            for layer in range(layers):
                for which in (0, 1):  # mean, variance
                    target = sum(w * batch_stats[k][layer][which] for w, k in zip(weights, group))
                    source = sum(w * source_stats[k][layer][which] for w, k in zip(weights, group))
                    group_loss = group_loss + ((target - source) ** 2).sum()
            if self.reduction == "mean":
                group_loss = group_loss / max(1, layers)
            total = total + share * group_loss
        return total


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
