"""The distillation loss (Hinton et al. 2015) for a teacher that gives probabilities, not logits:
the ensemble Σ_k ζ_k softmax(g_k(f_k(x))) is a mixture, so its tempered distribution is
softmax(log p / T)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-8


def soften(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """p^(1/T), renormalised (N×C → N×C); T = 1 returns p."""
    return torch.softmax(torch.log(probs.clamp_min(EPS)) / temperature, dim=1)


class KDLoss(nn.Module):
    """T²·KL(soften(p_teacher, T) ‖ softmax(z_student / T)), averaged over the batch.

    student_logits: N×C; teacher_probs: N×C (rows sum to 1). The T² keeps the gradient's scale
    independent of T. Returns a scalar."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        target = soften(teacher_probs.float(), t)
        log_student = F.log_softmax(student_logits.float() / t, dim=1)
        return F.kl_div(log_student, target, reduction="batchmean") * t * t


class PseudoLabelCE(nn.Module):
    """Cross-entropy of the student's logits (N×C) against the teacher's argmax (from N×C
    probabilities): the ensemble's pseudo-labels. Returns a scalar."""

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor,
                count: torch.Tensor | float | None = None) -> torch.Tensor:
        """`count`: divide the summed cross-entropy by it instead of N (a share of a batch whose
        rows are split unevenly over processes)."""
        summed = F.cross_entropy(student_logits.float(), teacher_probs.argmax(dim=1), reduction="sum")
        return summed / (len(student_logits) if count is None else count)
