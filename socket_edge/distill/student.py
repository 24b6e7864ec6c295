"""Where the student's weights start.

torchvision's ImageNet weights are used only when their file is in torch's cache (offline);
here that holds for mobilenet_v2, not for mobilenet_v3_small. So `--weights auto` picks:
1. `teacher`: a copy of the teacher member with the student's architecture (the one with the
   largest ζ): it is already adapted to the target modality, the best start there is;
2. `imagenet`: torchvision's ImageNet weights, when cached;
3. `none`: random initialisation (and says so).
`--weights imagenet` without a cached file is an error naming the fix, as in train-source.
A student with dropped blocks (`dropped_blocks`) starts from any of these minus those blocks' weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from socket_edge.distill.config import DistillConfig
from socket_edge.errors import UsageError
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.zoo import ModelConfig, SourceModel, build, cached_imagenet, load_pretrained


@dataclass
class StudentStart:
    """The student's first weights, and what they are."""

    member: SourceModel
    weights: str          # teacher, imagenet or none
    note: str             # one line for the log and the provenance

    @property
    def pretrained(self) -> bool:
        """Pretrained weights get SHOT's backbone lr ×0.1; a random start trains at full lr."""
        return self.weights != "none"


def start_student(config: DistillConfig, teacher: Ensemble) -> StudentStart:
    """Build the student member as `config.weights` says (see the module docstring)."""
    wanted = ModelConfig(config.arch, len(teacher.contract.class_names), dropped_blocks=config.dropped_blocks)
    full = replace(wanted, dropped_blocks=())
    matching = [k for k, m in enumerate(teacher.members) if m.config == full]
    dropped = f" without features {', '.join(map(str, config.dropped_blocks))}" if config.dropped_blocks else ""
    choice = config.weights
    if choice == "auto":
        choice = "teacher" if matching else "imagenet" if cached_imagenet(config.arch) else "none"
    if choice == "teacher":
        if not matching:
            archs = ", ".join(m.config.arch for m in teacher.members)
            raise UsageError(
                f"--weights teacher needs a teacher member of the student's architecture {config.arch} "
                f"(the teacher has: {archs}); pass --weights imagenet or none, or --arch {teacher.members[0].config.arch}"
            )
        k = max(matching, key=lambda i: float(teacher.zeta[i]))
        return StudentStart(copy_kept(teacher.members[k], wanted), "teacher",
                            f"teacher member {k + 1} ({config.arch}, ζ {float(teacher.zeta[k]):.3f}){dropped}")
    state = load_pretrained(config.arch, choice)  # imagenet: a clear error when the file is not cached
    note = (f"ImageNet {config.arch}" if state is not None else f"random {config.arch}") + dropped
    if state is None and config.weights == "auto":
        note += " (no teacher member of this architecture, no ImageNet file for it in torch's cache)"
    return StudentStart(build(wanted, state), choice, note)


def teacher_arch(teacher: Path) -> str:
    """The architecture of the teacher's member with the largest ζ (the student's default)."""
    data = artifact.read(teacher)
    k = max(range(len(data["members"])), key=lambda i: float(data["zeta"][i]))
    return data["members"][k]["config"]["arch"]


def copy_kept(member: SourceModel, config: ModelConfig) -> SourceModel:
    """A new member built from `config` holding a copy of `member`'s weights for every parameter
    and buffer it keeps (all of them but the dropped blocks'). Building draws no random numbers
    from torch's seeded generator, so training goes on as from a plain copy."""
    with torch.random.fork_rng(devices=[]):
        student = build(config)
    source = member.state_dict()
    student.load_state_dict({name: source[name].detach().clone() for name in student.state_dict()})
    return student
