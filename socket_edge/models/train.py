"""`socket-edge train-source`: supervised training of one source classifier on class folders."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from socket_edge.contract import DEFAULT_DEPTH_RANGE, DEFAULT_DEPTH_SCALE, InputContract
from socket_edge.data.folders import class_folders
from socket_edge.data.cache import cached_frames
from socket_edge.data.loading import intensity_dtype
from socket_edge.errors import DataError
from socket_edge.metrics import metrics
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.torch_utils import augment, resolve_device, seed_everything
from socket_edge.models.zoo import ModelConfig, build, load_pretrained, parameter_groups
from socket_edge.training import distributed
from socket_edge.training.batches import Batch, FrameRows
from socket_edge.training.loop import Task, fit, on_device


@dataclass(frozen=True)
class TrainConfig:
    """Source-training settings (saved in the artifact's provenance)."""

    arch: str = "mobilenet_v2"
    weights: str = "imagenet"
    head: str = "paper"
    modality: str = "rgb"
    img_size: int = 224
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-2
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    val_fraction: float = 0.1
    depth_scale: float = DEFAULT_DEPTH_SCALE
    depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE
    seed: int = 0
    device: str = "auto"


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): about `fraction` of each class held out (none from classes of < 2)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        k = int(round(len(idx) * fraction)) if len(idx) >= 2 else 0
        k = min(k, len(idx) - 1)
        val += idx[:k].tolist()
        train += idx[k:].tolist()
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def make_contract(config: TrainConfig, class_names: tuple[str, ...], first_file: Path) -> InputContract:
    """The contract for the training data; infrared keeps the files' bit depth."""
    raw_dtype = intensity_dtype(first_file, config.modality)
    return InputContract.for_modality(
        config.modality, class_names, config.img_size, depth_scale=config.depth_scale,
        depth_range=config.depth_range, raw_dtype=raw_dtype,
    )


class SourceTraining(Task):
    """Train-source's part of the training loop: label-smoothed cross-entropy on augmented
    batches of the training split, the held-out accuracy after each epoch."""

    evaluates_start = False

    def __init__(self, config: TrainConfig, model: Ensemble, frames: np.ndarray, labels: np.ndarray,
                 train_idx: np.ndarray, val_idx: np.ndarray, device: torch.device) -> None:
        self.config, self.model, self.frames, self.labels, self.device = config, model, frames, labels, device
        self.train_idx, self.val_idx = train_idx, val_idx
        self.optimizer = torch.optim.SGD(parameter_groups(model.members[0], config.lr), momentum=0.9, nesterov=True,
                                         weight_decay=config.weight_decay)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.net = distributed.parallel(model.members[0], device)  # DDP under torchrun

    def step(self, batch: Batch, generator: torch.Generator, done: float) -> tuple[torch.Tensor, dict]:
        rows = self.train_idx[batch.idx.numpy()]
        raw = augment(batch.on(self.device), generator, nearest=self.model.contract.invalid_zero,
                      share=distributed.share())
        logits = self.net(self.model.input(raw))
        return self.criterion(logits, torch.from_numpy(self.labels[rows]).to(self.device)), {}

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        entry = {"epoch": epoch, **losses}
        if len(self.val_idx):
            entry["val_accuracy"] = self.validate()["accuracy"]
        return entry

    def validate(self) -> dict:
        """Metrics of the model on the held-out split."""
        probs = distributed.predict_all(self.model, self.frames[self.val_idx], self.device)
        return metrics(self.labels[self.val_idx], probs, self.model.contract.class_names)

    def describe(self, entry: dict) -> str:
        return f"epoch {entry['epoch']}/{self.config.epochs}: " + \
            ", ".join(f"{k} {v}" for k, v in entry.items() if k != "epoch")


def train_source(data_root: str | Path, out: str | Path, config: TrainConfig, progress: bool = True,
                 classes: list[str] | None = None, command: str | None = None,
                 cache_dir: str | Path | None = None, workers: int | None = None) -> dict:
    """Train, report held-out accuracy, write the artifact atomically; returns the metrics.
    `command`: the command line, for the provenance; `cache_dir`: where the frame cache lives;
    `workers`: DataLoader processes. Under torchrun, rank 0 alone writes."""
    started = time.time()
    out = Path(out)
    if out.is_dir():
        raise DataError(f"--out {out} is a folder; give a file name such as {out}/source.pt")
    images = class_folders(data_root, "training data", classes)
    if len(images.class_names) < 2:
        raise DataError(f"training data {images.root} has one class ({images.class_names[0]}); a classifier needs at least 2")
    device = distributed.join(resolve_device(config.device))
    backbone_state = load_pretrained(config.arch, config.weights)
    contract = make_contract(config, images.class_names, images.files[0])
    with distributed.local_main_first():
        frames = cached_frames(images.files, contract, cache_dir=cache_dir, desc="reading images",
                               progress=progress and distributed.is_main())
    labels = np.asarray(images.labels, dtype=np.int64)
    train_idx, val_idx = stratified_split(labels, config.val_fraction, config.seed)

    seed_everything(config.seed)
    member = distributed.sync_batchnorm(build(ModelConfig(config.arch, len(images.class_names), config.head),
                                              backbone_state), device)
    task = SourceTraining(config, on_device(Ensemble(contract, [member], [1.0]), device), frames, labels, train_idx,
                          val_idx, device)
    history = fit(task, data=FrameRows([frames], train_idx), batch_size=config.batch_size, epochs=config.epochs,
                  seed=config.seed, device=device, progress=progress, workers=workers)
    result = {"epochs": history, "train_n": int(len(train_idx)), "val_n": int(len(val_idx))}
    if len(val_idx):
        val = task.validate()
        result.update(val_accuracy=val["accuracy"], val_per_class=val["per_class"])
    result["seconds"] = round(time.time() - started, 1)
    if not distributed.is_main():
        return result
    prov = artifact.provenance(
        command, stage="train-source", seed=config.seed, config=asdict(config), data=images.summary(), metrics=result,
        device=str(device),
    )
    artifact.save(task.model.cpu(), out, "source", prov)
    return result
