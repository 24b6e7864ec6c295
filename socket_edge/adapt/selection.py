"""Label-free scores of the adapting ensemble on the whole target set, recorded every epoch,
and the rule that picks the epoch to keep from them (no target label is read)."""

from __future__ import annotations

import torch

from socket_edge.adapt.information_max import InformationMaximization


def target_scores(probs: torch.Tensor, pseudo_labels: torch.Tensor | None) -> dict[str, float]:
    """ent (mean prediction entropy), div (entropy of the mean prediction), im = ent − div (the
    information-maximisation objective, lower is better) and, given the clustering pseudo-labels,
    agree: the fraction of images whose prediction equals its pseudo-label."""
    im, ent, div = InformationMaximization()(probs.float())
    scores = {"ent": round(float(ent), 5), "div": round(float(div), 5), "im": round(float(im), 5)}
    if pseudo_labels is not None:
        scores["agree"] = round(float((probs.argmax(dim=1) == pseudo_labels).float().mean()), 5)
    return scores


def better(rule: str, entry: dict, best: dict | None) -> bool:
    """Whether the epoch `entry` replaces the kept one under `rule` ("last" or "min-im")."""
    if best is None or rule == "last":
        return True
    return entry["im"] < best["im"]
