"""Source architectures by name, split into a feature encoder f and a classifier g.

Heads:
- "paper": the SHOT/SOCKET head for models trained here: f = backbone → Linear(d, 256)
  → BatchNorm1d(256); g = weight-normalised Linear(256, classes).
- "native": a classifier brought from elsewhere: f = everything before its last
  Linear, g = that Linear.

A MobileNetV2 may leave out some of its residual inverted-residual blocks (`dropped_blocks`, indices
into `features`): each is replaced by nn.Identity, so shapes and the other blocks' parameter names
stay as they are and a full MobileNetV2's weights load into it minus the dropped blocks'.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn.utils import parametrizations

from socket_edge.contract import MAX_CLASSES, number_problem
from socket_edge.models.torch_utils import load_tensors
from socket_edge.errors import ArtifactError, UsageError

ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
HEADS = ("paper", "native")
BOTTLENECK = 256
MAX_BOTTLENECK = 16384  # features of the bottleneck layer (the paper's is 256)
# MobileNetV2 `features` indices of the blocks with an identity skip (stride 1, channels in = out),
# by stage (24, 32, 64, 96, 160 channels): leaving one out keeps every shape valid
RESIDUAL_BLOCKS = {"mobilenet_v2": ((3,), (5, 6), (8, 9, 10), (12, 13), (15, 16))}


@dataclass(frozen=True)
class ModelConfig:
    """Enough to rebuild a member's modules (without weights) from an artifact."""

    arch: str
    num_classes: int
    head: str = "paper"
    bottleneck: int = BOTTLENECK
    dropped_blocks: tuple[int, ...] = ()   # `features` indices replaced by nn.Identity (mobilenet_v2)

    def __post_init__(self) -> None:
        for name, low, high in (("num_classes", 1, MAX_CLASSES), ("bottleneck", 1, MAX_BOTTLENECK)):
            problem = number_problem(getattr(self, name), low, high, whole=True)
            if problem:
                raise UsageError(f"{name} {problem}")
        if not isinstance(self.dropped_blocks, (list, tuple)):
            raise UsageError(f"dropped_blocks must be a list of block indices, got {self.dropped_blocks!r}")
        if not isinstance(self.arch, str) or self.arch not in ARCHITECTURES:
            raise UsageError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if not isinstance(self.head, str) or self.head not in HEADS:
            raise UsageError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        object.__setattr__(self, "dropped_blocks", check_dropped_blocks(self.arch, self.dropped_blocks))

    def to_dict(self) -> dict:
        """Plain data for the artifact (no `dropped_blocks` key when none are: such an artifact is
        the same as before the field existed)."""
        data = asdict(self)
        if self.dropped_blocks:
            data["dropped_blocks"] = list(self.dropped_blocks)
        else:
            del data["dropped_blocks"]
        return data


def residual_blocks(arch: str) -> tuple[int, ...]:
    """The `features` indices of `arch` that may be dropped, in order (empty: none may)."""
    return tuple(i for stage in RESIDUAL_BLOCKS.get(arch, ()) for i in stage)


def check_dropped_blocks(arch: str, dropped: object) -> tuple[int, ...]:
    """`dropped` as a sorted tuple of distinct indices, or a UsageError naming the allowed ones."""
    allowed = residual_blocks(arch)
    blocks = tuple(dropped)  # an artifact stores a list
    if not blocks:
        return ()
    if not allowed:
        raise UsageError(f"only {', '.join(RESIDUAL_BLOCKS)} can drop blocks, not {arch}")
    bad = [b for b in blocks if not isinstance(b, int) or b not in allowed]
    if bad or len(set(blocks)) != len(blocks):
        wrong = f"{bad[0]!r} is not one" if bad else "an index is repeated"
        raise UsageError(f"dropped blocks must be distinct residual blocks of {arch} "
                         f"(features {', '.join(map(str, allowed))}); {wrong}")
    return tuple(sorted(blocks))


def drop_order(arch: str) -> tuple[int, ...]:
    """The order in which `--drop-blocks N` drops residual blocks: the last residual block of each
    stage first (deepest stage first), then the last remaining one of each stage, and so on: a
    stage's last block sees the stage's most refined features and usually adds the least."""
    stages = [list(stage) for stage in reversed(RESIDUAL_BLOCKS.get(arch, ()))]
    order: list[int] = []
    while any(stages):
        order += [stage.pop() for stage in stages if stage]
    return tuple(order)


def blocks_to_drop(arch: str, count: int) -> tuple[int, ...]:
    """The first `count` blocks of `drop_order(arch)` (sorted), or a UsageError when there are fewer."""
    order = drop_order(arch)
    if count and not order:
        raise UsageError(f"only {', '.join(RESIDUAL_BLOCKS)} can drop blocks, not {arch}")
    if not 0 <= count <= len(order):
        raise UsageError(f"--drop-blocks {count}: {arch} has {len(order)} residual blocks that can be dropped "
                         f"(0 to {len(order)})")
    return tuple(sorted(order[:count]))


class SourceModel(nn.Module):
    """One classifier: encoder f (image → feature vector) and classifier g (feature → logits)."""

    def __init__(self, config: ModelConfig, encoder: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))


def _torchvision(arch: str, num_classes: int = 1000) -> nn.Module:
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


def _split(model: nn.Module, arch: str) -> tuple[nn.Module, nn.Linear]:
    """Backbone up to the feature vector, and the last Linear."""
    if arch.startswith("resnet"):
        fc = model.fc
        model.fc = nn.Identity()
        return model, fc
    classifier = model.classifier  # mobilenets: Sequential ending in Linear
    last = classifier[-1]
    model.classifier = nn.Sequential(*list(classifier)[:-1])
    return model, last


def build(config: ModelConfig, backbone_state: dict | None = None) -> SourceModel:
    """Build a member; `backbone_state` is a full torchvision state dict (e.g. ImageNet), loaded
    before the dropped blocks are left out."""
    native_classes = config.num_classes if config.head == "native" else 1000
    if backbone_state is not None:
        native_classes = _fc_classes(backbone_state, config.arch)
        if config.head == "native" and native_classes != config.num_classes:
            raise UsageError(
                f"the weights' last layer has {native_classes} outputs but the data has {config.num_classes} "
                "classes; use --head paper to train a new head"
            )
    model = _torchvision(config.arch, native_classes)
    if backbone_state is not None:
        try:
            model.load_state_dict(backbone_state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ArtifactError(f"the weights do not fit {config.arch}: {first}") from None
    for index in config.dropped_blocks:
        model.features[index] = nn.Identity()
    backbone, last = _split(model, config.arch)
    if config.head == "native":
        return SourceModel(config, backbone, last)
    encoder = nn.Sequential(
        backbone,
        nn.Linear(last.in_features, config.bottleneck),
        nn.BatchNorm1d(config.bottleneck),
    )
    classifier = parametrizations.weight_norm(nn.Linear(config.bottleneck, config.num_classes), dim=0)
    return SourceModel(config, encoder, classifier)


def _fc_classes(state: dict, arch: str) -> int:
    key = "fc.weight" if arch.startswith("resnet") else None
    if key is None:
        keys = [k for k in state if k.startswith("classifier.") and k.endswith(".weight")]
        key = max(keys, key=lambda k: int(k.split(".")[1])) if keys else None
    if key is None or key not in state:
        raise ArtifactError(f"the weights do not fit {arch}: no final classifier layer (fc.weight / classifier.N.weight)")
    return int(state[key].shape[0])


def load_pretrained(arch: str, weights: str) -> dict | None:
    """Resolve --weights: 'none', 'imagenet' (torchvision weights API, torch's cache offline),
    or a state-dict file. Returns a torchvision state dict or None."""
    if weights in ("none", "", None):
        return None
    enums = torchvision.models.get_model_weights(arch)
    if weights == "imagenet" or weights in enums.__members__:
        return _torchvision_weights(arch, enums, weights)
    path = Path(weights)
    if not path.is_file():
        raise ArtifactError(f"weights file {path} does not exist; pass --weights imagenet, none, or a state-dict file")
    state = load_tensors(path, "a state dict socket-edge loads",
                         "Pass a state dict saved with torch.save(model.state_dict(), FILE), or --weights imagenet")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactError(f"{path} is not a state dict (a mapping of parameter names to tensors)")
    return state


def cached_imagenet(arch: str) -> list:
    """torchvision's ImageNet weight variants of `arch` whose files are in torch's cache
    (usable offline, no download attempted)."""
    enums = torchvision.models.get_model_weights(arch)
    return [w for w in enums if (Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name).is_file()]


def _torchvision_weights(arch: str, enums, weights: str) -> dict:
    """torchvision's ImageNet weights: 'imagenet' takes the default variant, or any other
    variant already in torch's cache when offline; an enum name (IMAGENET1K_V1) takes that one.
    The file is checked against the SHA-256 prefix in its name and read as plain tensors
    (weights_only): a file placed in the cache never runs code."""
    if weights == "imagenet":
        cached = cached_imagenet(arch)
        choice = enums.DEFAULT if enums.DEFAULT in cached or not cached else cached[0]
    else:
        choice = enums[weights]
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(choice.url).name
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(choice.url, str(path), hash_prefix=_hash_prefix(path), progress=False)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a wrong hash a RuntimeError
            raise ArtifactError(
                f"ImageNet weights for {arch} ({path.name}) are not in torch's cache ({path.parent}) and cannot be "
                f"downloaded ({exc}); pass --weights FILE (a torchvision state dict) or --weights none"
            ) from None
    check_hash(path)
    return load_tensors(path, "torchvision's weights file", "Delete it and run again with network access to "
                        "download it, or pass --weights none")


def _hash_prefix(path: Path) -> str | None:
    """The SHA-256 prefix torchvision puts in its file names (mobilenet_v2-b0353104.pth)."""
    match = torch.hub.HASH_REGEX.search(path.name)
    return match.group(1) if match else None


def check_hash(path: Path) -> None:
    """Refuse a cached weights file whose SHA-256 does not start with the prefix in its name."""
    prefix = _hash_prefix(path)
    if prefix is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(prefix):
        raise ArtifactError(
            f"{path} is not torchvision's file: its SHA-256 starts with {digest.hexdigest()[:len(prefix)]}, its name "
            f"says {prefix}; it is damaged or was replaced. Delete it and run again with network access to download "
            "it, or pass --weights none"
        )


def parameter_groups(model: SourceModel, lr: float, backbone_factor: float = 0.1) -> list[dict]:
    """SHOT's groups: pretrained backbone at lr×0.1, new layers (bottleneck, head) at lr."""
    backbone_params, new_params = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_backbone = name.startswith("encoder.0.") or (model.config.head == "native" and name.startswith("encoder."))
        (backbone_params if is_backbone else new_params).append(param)
    groups = [{"params": backbone_params, "lr": lr * backbone_factor, "lr0": lr * backbone_factor}]
    if new_params:
        groups.append({"params": new_params, "lr": lr, "lr0": lr})
    return groups
