"""Neighbourhood consistency (AaD: Yang et al., "Attracting and Dispersing", NeurIPS 2022),
for a ζ-weighted ensemble: a target image's prediction is pulled towards the predictions of
its nearest neighbours in feature space and pushed away from the other images of its batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def ensemble_features(features: list[torch.Tensor], zeta: torch.Tensor) -> torch.Tensor:
    """One feature per image for neighbour search: each member's L2-normalised feature scaled by
    √ζ_k, concatenated, so cosine similarity is the ζ-weighted mean of the members' cosines."""
    parts = [F.normalize(f.float(), dim=1) * z.sqrt() for z, f in zip(zeta.float(), features)]
    return torch.cat(parts, dim=1)


class NeighbourhoodConsistencyLoss(nn.Module):
    """L_nc = −mean_i Σ_{j∈N_k(i)} p_i·b_j + α · mean_i Σ_{j≠i in batch} p_i·p̄_j.

    Inputs: probs B×C (ensemble probabilities of the batch, with gradient), feats B×D (the
    batch's ensemble_features, detached), bank_feats N×D and bank_probs N×C (every target
    image's latest feature and prediction; the batch's rows are replaced here), idx B (the
    batch's rows in the bank), alpha ≥ 0 (the dispersion weight; AaD decays it over training).
    Neighbours N_k(i) are the k most cosine-similar bank rows other than i itself. Output: scalar."""

    def __init__(self, k: int = 5) -> None:
        super().__init__()
        self.k = k

    def forward(self, probs: torch.Tensor, feats: torch.Tensor, bank_feats: torch.Tensor, bank_probs: torch.Tensor,
                idx: torch.Tensor, alpha: float) -> torch.Tensor:
        with torch.no_grad():
            bank_feats[idx] = feats
            bank_probs[idx] = probs.detach().float()
            similarity = feats @ bank_feats.T
            similarity[torch.arange(len(idx), device=idx.device), idx] = -float("inf")
            k = min(self.k, len(bank_feats) - 1)
            neighbours = similarity.topk(k, dim=1).indices  # B×k
        attraction = (probs.float()[:, None, :] * bank_probs[neighbours]).sum(dim=(1, 2)).mean()
        others = 1 - torch.eye(len(probs), device=probs.device)
        dispersion = ((probs.float() @ probs.detach().float().T) * others).sum(dim=1).mean()
        return -attraction + alpha * dispersion
