"""Distillation settings: one small dataclass, saved in the run folder and the artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from socket_edge.errors import UsageError
from socket_edge.models.zoo import ARCHITECTURES, check_dropped_blocks

# where the student's weights start: see socket_edge.distill.student
INITS = ("auto", "teacher", "imagenet", "none")


@dataclass(frozen=True)
class DistillConfig:
    """L = T²·KL(teacher_T ‖ student_T) + λ_pl·CE(student, teacher's argmax) on the target images
    (the KL term alone on TI target images). SGD with SHOT's schedule, as train-source and adapt."""

    arch: str = "mobilenet_v2"
    weights: str = "auto"
    img_size: int | None = None   # None: the teacher's input size
    dropped_blocks: tuple[int, ...] = ()   # residual blocks the student leaves out (features indices)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-2
    weight_decay: float = 5e-4
    temperature: float = 2.0
    lambda_pl: float = 0.5
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise UsageError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.weights not in INITS:
            raise UsageError(f"--weights must be one of {', '.join(INITS)}, got {self.weights!r}")
        object.__setattr__(self, "dropped_blocks", check_dropped_blocks(self.arch, self.dropped_blocks))
        if not self.temperature > 0:
            raise UsageError(f"--temperature must be positive, got {self.temperature}")
        if self.lambda_pl < 0:
            raise UsageError(f"--lambda-pl must be non-negative, got {self.lambda_pl}")

    def to_dict(self) -> dict:
        """Plain data (lists, as JSON and the checkpoint hold them)."""
        return {**asdict(self), "dropped_blocks": list(self.dropped_blocks)}
