"""Self-supervised pseudo-labels (SHOT's centroid clustering, extended to ζ-weighted
ensembles) and the loss that uses them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-5


def _normalised(features: torch.Tensor) -> torch.Tensor:
    """Append a constant 1 (SHOT) and L2-normalise each row."""
    ones = torch.ones(len(features), 1, dtype=features.dtype, device=features.device)
    return F.normalize(torch.cat([features, ones], dim=1), dim=1)


def _cosine_distances(feats: list[torch.Tensor], weights: torch.Tensor, zeta: torch.Tensor) -> torch.Tensor:
    """Σ_k ζ_k (1 − cos(f̂_k(x), c_k)) with centroids c_k = weightsᵀ f̂_k / Σ weights. N×C."""
    total = 0
    mass = weights.sum(dim=0, keepdim=True).T + EPS  # C×1
    for z, f in zip(zeta, feats):
        centroids = F.normalize(weights.T @ f / mass, dim=1)  # C×D
        total = total + z * (1 - f @ centroids.T)
    return total


@torch.no_grad()
def cluster_pseudo_labels(features: list[torch.Tensor], probs: torch.Tensor, zeta: torch.Tensor,
                          rounds: int = 1) -> torch.Tensor:
    """Pseudo-labels for the whole target set.

    features: one N×D_k tensor per member (dimensions may differ); probs: N×C ensemble
    probabilities; zeta: K weights. Centroids start from the soft predictions, then
    `rounds` hard k-means steps (SHOT uses one); classes no sample is assigned to are
    dropped. With one member this is exactly SHOT's rule. Returns N labels (long)."""
    feats = [_normalised(f.float()) for f in features]
    probs = probs.float()
    distances = _cosine_distances(feats, probs, zeta.float())
    labels = distances.argmin(dim=1)
    for _ in range(rounds):
        onehot = F.one_hot(labels, probs.shape[1]).float()
        distances = _cosine_distances(feats, onehot, zeta.float())
        distances[:, onehot.sum(dim=0) == 0] = float("inf")
        labels = distances.argmin(dim=1)
    return labels


class PseudoLabelLoss(nn.Module):
    """L_pl: cross-entropy of the ensemble prediction against pseudo-labels.

    Input: probs N×C (ensemble probabilities), labels N (long). Output: scalar
    −mean_i log p_i[ŷ_i]. With one member this is SHOT's cross-entropy on its logits."""

    def forward(self, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return -torch.log(probs.gather(1, labels[:, None]).squeeze(1) + EPS).mean()
