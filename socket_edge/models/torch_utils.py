"""Small torch helpers shared by training, adaptation and evaluation."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from socket_edge.errors import ArtifactError, UsageError


def load_tensors(path: Path, what: str, fix: str) -> object:
    """torch.load(weights_only=True) of a file from outside: plain data and tensors, never code.
    A file that holds Python objects (a pickle payload), a damaged zip or no PyTorch file at all is
    one ArtifactError naming the file, saying it is not `what`, and how to `fix` it (torch's own
    message suggests weights_only=False, which would run the payload)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return_error = (f"{path} holds Python objects ({found.group(1)}), not only plain data and tensors, so it is "
                        f"not {what}: socket-edge never unpickles code. {fix}")
    else:
        try:
            with open(path, "rb") as f:
                zipped = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        except OSError as exc:
            raise ArtifactError(f"{path} cannot be read: {exc.strerror}") from None
        return_error = (f"{path} is damaged or truncated (its zip archive is incomplete or corrupt); copy it again or "
                        f"re-create it" if zipped else f"{path} is not a PyTorch file, so it is not {what}. {fix}")
    raise ArtifactError(return_error)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu; an unavailable cuda is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """Raw frames (uint8, uint16 or float32, N×C×H×W) as a float32 tensor on `device`: the
    integer copy crosses to the device, the conversion happens there."""
    host = np.require(frames, requirements=("C", "W"))  # a read-only memory-mapped slice is copied
    return torch.from_numpy(host).to(device, non_blocking=True).float()


def augment(raw: torch.Tensor, generator: torch.Generator, nearest: bool, min_scale: float = 0.6,
            share: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Random resized crop (area fraction min_scale..1, aspect 3/4..4/3) and horizontal flip of raw
    float frames, back to the same size: one batched resampling on the frames' device; the draws
    come from `generator` (on the CPU). `nearest` keeps depth holes (0) from blending into readings.
    `share` (rank, ranks): `raw` is rows rank, rank + ranks, … of a global batch; the draws are
    made for the whole global batch, so every image gets the crop it gets in one process."""
    _, _, h, w = raw.shape
    rank, ranks = share
    params = torch.rand((len(raw) * ranks, 4), generator=generator, dtype=torch.float64)[rank::ranks]
    flip = (torch.rand(len(raw) * ranks, generator=generator) < 0.5)[rank::ranks]
    n = len(raw)
    area = min_scale + (1 - min_scale) * params[:, 0]
    aspect = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * params[:, 1])
    ch = torch.round(h * torch.sqrt(area / aspect)).clamp(2, h)
    cw = torch.round(w * torch.sqrt(area * aspect)).clamp(2, w)
    top = torch.floor((h - ch) * params[:, 2])
    left = torch.floor((w - cw) * params[:, 3])
    theta = torch.zeros((n, 2, 3), dtype=torch.float64)
    theta[:, 0, 0] = torch.where(flip, -1.0, 1.0) * cw / w  # the crop's box, in the frame's [-1, 1] coordinates
    theta[:, 0, 2] = (2 * left + cw) / w - 1
    theta[:, 1, 1] = ch / h
    theta[:, 1, 2] = (2 * top + ch) / h - 1
    grid = F.affine_grid(theta.to(raw.device, torch.float32), list(raw.shape), align_corners=False)
    return F.grid_sample(raw, grid, mode="nearest" if nearest else "bilinear", padding_mode="border",
                         align_corners=False)


def lr_schedule(optimizer: torch.optim.Optimizer, progress: float, gamma: float = 10.0, power: float = 0.75) -> None:
    """SHOT's annealing: lr = lr0 · (1 + γ·p)^(−power), p = fraction of training done."""
    factor = (1 + gamma * progress) ** (-power)
    for group in optimizer.param_groups:
        group["lr"] = group["lr0"] * factor


@torch.no_grad()
def predict(model: torch.nn.Module, frames: np.ndarray, device: torch.device, batch_size: int = 64,
            progress: bool = False) -> np.ndarray:
    """Class probabilities (N×classes, numpy) of an Ensemble on raw frames (any dtype of `to_device`)."""
    from socket_edge.progress import bar

    model.eval().to(device)
    out = []
    starts = range(0, len(frames), batch_size)
    for start in bar(starts, desc="predict", enabled=progress, leave=False):
        batch = to_device(frames[start:start + batch_size], device)
        out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(model.contract.class_names)), np.float32)
