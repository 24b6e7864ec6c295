"""Validators that read no target label, recorded every epoch beside the IM objective and the
pseudo-label agreement (selection.py), so that a run, an epoch or a candidate method can be chosen
without labelled target data:

- SND, soft neighbourhood density (Saito, Kim, Teterwak, Sclaroff, Darrell, Saenko, "Tune it the
  Right Way: Unsupervised Validation of Domain Adaptation via Soft Neighborhood Density", ICCV 2021):
  higher is better;
- TI hold-out consistency, which only the cross-modal setting has: with --ti-holdout (0.2 under
  --select auto) a fixed share of the TI pairs, chosen by file name, is never trained on; the frozen sources' task-class probabilities on its source-modality images
  (ζ-mixed) against the adapted ensemble's on the paired target-modality images: the agreement of
  their predictions (higher is better) and the mean KL divergence (lower is better)."""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

EPS = 1e-8
SND_TEMPERATURE = 0.05  # Saito et al.'s τ
HOLDOUT_FRACTION = 0.2


def snd(features: torch.Tensor, temperature: float = SND_TEMPERATURE) -> float:
    """Soft neighbourhood density of N×D features: the mean over rows of the entropy of
    softmax(cos(f_i, f_j) / τ) over j ≠ i. Saito et al. use the softmax outputs as the features
    (as adapt does). Dense, well-separated clusters give a high value; scattered features a low one."""
    feats = F.normalize(features.float(), dim=1)
    similarity = feats @ feats.T / temperature
    similarity.fill_diagonal_(-float("inf"))
    p = torch.softmax(similarity, dim=1)
    entropy = -(p * torch.log(p + EPS)).sum(dim=1)
    return float(entropy.mean())


def ti_consistency(source_probs: list[torch.Tensor], zeta: torch.Tensor, adapted: torch.Tensor) -> dict[str, float]:
    """`source_probs`: each frozen source's N×C task-class probabilities on the held-out TI images
    of its own modality; `zeta`: the ensemble's current weights; `adapted`: the adapted ensemble's
    N×C probabilities on the paired target-modality images. Returns ti_agree (the fraction of pairs
    whose predicted class agrees) and ti_kl (mean KL(sources ‖ adapted))."""
    mixed = sum(z * p.float() for z, p in zip(zeta.float(), source_probs))
    adapted = adapted.float()
    agree = (mixed.argmax(dim=1) == adapted.argmax(dim=1)).float().mean()
    kl = (mixed * (torch.log(mixed + EPS) - torch.log(adapted + EPS))).sum(dim=1).mean()
    return {"ti_agree": round(float(agree), 5), "ti_kl": round(float(kl), 5)}


def holdout(keys: list[str], fraction: float = HOLDOUT_FRACTION) -> list[bool]:
    """Whether each file (by its relative path) is held out: the `fraction` of the files whose
    SHA-1 hashes sort first (at least one, never all but where there is one file). Fixed by the
    names alone, so every method, seed and run holds out the same files."""
    n = len(keys)
    count = min(max(1, round(fraction * n)), n - 1) if n > 1 else 0
    order = sorted(range(n), key=lambda i: hashlib.sha1(keys[i].encode()).hexdigest())
    chosen = set(order[:count])
    return [i in chosen for i in range(n)]


# The label-free validators (choices.VALIDATORS) and whether a higher value is better; "im" is ent − div
# (selection.py).
HIGHER_IS_BETTER: dict[str, bool] = {"ti_agree": True, "ti_kl": False, "snd": True, "im": False, "agree": True}
