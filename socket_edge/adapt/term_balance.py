"""Term balance: each weighted loss term's gradient norm on the trainable parameters, so that a
user sees a term that is inert (≪ the information-maximisation term) or dominant (≫ it) without
reading code. The paper asks that no loss component overpower another by a large margin; scheduled_weight
fades a cross-modal term's weight over training (not the paper's). Only gradient_norms needs torch
(imported there): `inspect` describes the recorded norms without it."""

from __future__ import annotations

import math

from socket_edge.adapt.choices import SCHEDULES

REFERENCE = "im"  # L_ent − L_div, the term every method has
INERT, DOMINANT = 0.1, 10.0  # a term below 0.1× or above 10× the reference's gradient norm is flagged
LABELS = {"im": "IM", "pl": "pl", "nc": "nc", "ti": "TI", "d": "d"}


def gradient_norms(terms: dict, params: list) -> dict[str, float]:
    """‖∂t/∂θ‖₂ over the trainable parameters θ (tensors) for each weighted term t (a scalar tensor;
    one extra backward pass each, the graph kept for the step's own backward). Under torchrun the
    gradients are first averaged over the ranks, as DDP averages the step's."""
    import torch

    from socket_edge.training import distributed

    norms = {}
    for name, value in terms.items():
        if not value.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        flat = [g.reshape(-1).float() for g in grads if g is not None]
        vector = distributed.mean_over_ranks(torch.cat(flat)) if flat else torch.zeros(1)
        norms[name] = round(float(vector.norm()), 5)
    return norms


def scheduled_weight(weight: float, schedule: str, done: float) -> float:
    """λ_TI or λ_d at the fraction `done` of training: "constant" (the paper's), or "cosine", λ·(1 + cos πp)/2,
    from λ at the first step to 0 at the last. Not the paper's: the frobenius L_TI's gradient has norm λ_TI
    however small the residual, so a constant weight keeps it 3–4× the IM term's to the last epoch, and Eq. 3's
    unsquared L_d 1.5–4× (docs/benchmarks/faithful_socket.md); with the cosine on λ_TI (socket-plus's preset
    then) the target terms finish the training, which ranked first on the mean over that study's settings. The
    cosine on λ_d as well lost to it there (−3.7 / −5.3 points)."""
    if schedule == "constant":
        return weight
    if schedule == "cosine":
        return weight * (1 + math.cos(math.pi * min(max(done, 0.0), 1.0))) / 2
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def flags(norms: dict[str, float]) -> dict[str, str]:
    """'inert' or 'dominant' for each term whose gradient norm is far from the reference term's."""
    ref = norms.get(REFERENCE, 0.0)
    if ref <= 0:
        return {}
    out = {}
    for name, value in norms.items():
        if name != REFERENCE and value < INERT * ref:
            out[name] = "inert"
        elif name != REFERENCE and value > DOMINANT * ref:
            out[name] = "dominant"
    return out


def describe(norms: dict[str, float]) -> str:
    """'grad IM 8.1, pl 2.3, TI 0.41 (inert), d 231 (dominant)'."""
    marks = flags(norms)
    parts = [f"{LABELS.get(k, k)} {v:.3g}" + (f" ({marks[k]})" if k in marks else "") for k, v in norms.items()]
    return "grad " + ", ".join(parts)


def history_lines(epochs: list[dict]) -> list[str]:
    """The term balance of a run's metrics lines: the first and the last epoch that measured it."""
    measured = [e for e in epochs if isinstance(e, dict) and isinstance(e.get("grad_norms"), dict)]
    shown = measured[:1] + measured[-1:] if len(measured) > 1 else measured
    return [f"epoch {e.get('epoch', '?')}: {describe(e['grad_norms'])}" for e in shown]
