"""Adaptation settings: one small dataclass, saved in the run folder and the artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from socket_edge.adapt.bn_alignment import REDUCTIONS
from socket_edge.adapt.ti_alignment import DISTANCES
from socket_edge.contract import DEFAULT_DEPTH_RANGE, DEFAULT_DEPTH_SCALE, MODALITIES
from socket_edge.errors import UsageError

METHODS = ("none", "shot", "decision", "socket")


@dataclass(frozen=True)
class AdaptConfig:
    """Defaults follow the paper's references: SGD (momentum 0.9, nesterov), lr·(1+10p)^−0.75,
    backbone lr ×0.1, batch 32, 15 epochs, λ_pl 0.3, λ_TI = λ_d in the paper's 0.1–0.5."""

    method: str = "socket"
    modality: str = "depth"
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-2
    lr_zeta: float = 1e-2
    weight_decay: float = 1e-3
    lambda_pl: float = 0.3
    lambda_ti: float = 0.1
    lambda_d: float = 0.1
    ti_distance: str = "mean_sq"
    bn_reduction: str = "sum"
    img_size: int | None = None
    depth_scale: float = DEFAULT_DEPTH_SCALE
    depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.modality not in MODALITIES:
            raise UsageError(f"unknown modality {self.modality!r}; choose one of {', '.join(MODALITIES)}")
        if self.ti_distance not in DISTANCES:
            raise UsageError(f"--ti-distance must be one of {', '.join(DISTANCES)}")
        if self.bn_reduction not in REDUCTIONS:
            raise UsageError(f"--bn-reduction must be one of {', '.join(REDUCTIONS)}")
        if min(self.lambda_pl, self.lambda_ti, self.lambda_d) < 0:
            raise UsageError("loss weights (--lambda-*) must be non-negative")

    @property
    def learns_zeta(self) -> bool:
        """DECISION and SOCKET learn ζ; SHOT and the unadapted ensemble keep it equal."""
        return self.method in ("decision", "socket")

    @property
    def uses_ti(self) -> bool:
        """Only SOCKET reads the TI pairs (L_TI)."""
        return self.method == "socket" and self.lambda_ti > 0

    @property
    def uses_bn_stats(self) -> bool:
        """Only SOCKET matches BatchNorm statistics (L_d)."""
        return self.method == "socket" and self.lambda_d > 0

    def to_dict(self) -> dict:
        """Plain data (lists for tuples)."""
        d = asdict(self)
        d["depth_range"] = list(self.depth_range)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "AdaptConfig":
        """Rebuild from to_dict."""
        return cls(**{**data, "depth_range": tuple(data["depth_range"])})
