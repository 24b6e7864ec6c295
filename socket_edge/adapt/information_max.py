"""Information maximisation (SHOT, SOCKET's modality-agnostic L_ma without the pseudo-label term)."""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-5


class InformationMaximization(nn.Module):
    """L_ent − L_div on ensemble probabilities.

    Input: probs N×C (rows sum to 1). Output: (loss, l_ent, l_div), scalars, where
    l_ent = mean_i H(p_i) (confident predictions) and l_div = H(mean_i p_i) (diverse
    predictions); minimising l_ent − l_div maximises the mutual information."""

    def forward(self, probs: torch.Tensor, mean: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`mean`: the mean prediction of the whole (global) batch when `probs` is one share of it."""
        l_ent = -(probs * torch.log(probs + EPS)).sum(dim=1).mean()
        mean = probs.mean(dim=0) if mean is None else mean
        l_div = -(mean * torch.log(mean + EPS)).sum()
        return l_ent - l_div, l_ent, l_div
