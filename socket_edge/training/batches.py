"""The training data as PyTorch's DataLoader sees it: rows of frame arrays (the memory-mapped
frame caches, in their raw dtype) read a batch at a time, in the order DistributedSampler gives
this rank; a worker process reopens a memory-mapped cache by its file name instead of copying it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from socket_edge.training import distributed


class FrameRows(Dataset):
    """Position i → row `index[i]` of the arrays `parts` laid end to end (target images, then TI
    target images); `index` defaults to every row. A batch comes as (positions, frames)."""

    def __init__(self, parts: list[np.ndarray], index: np.ndarray | None = None) -> None:
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.index = np.arange(self.starts[-1]) if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitems__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        picked = torch.as_tensor(positions, dtype=torch.long)
        rows = self.index[picked.numpy()]
        first = self.parts[0]
        frames = np.empty((len(rows), *first.shape[1:]), dtype=first.dtype)
        part = np.searchsorted(self.starts, rows, side="right") - 1
        for k, array in enumerate(self.parts):
            mask = part == k
            if mask.any():
                frames[mask] = array[rows[mask] - self.starts[k]]
        return picked, torch.from_numpy(frames)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["parts"] = [("memmap", p.filename) if isinstance(p, np.memmap) and p.filename else p for p in self.parts]
        return state

    def __setstate__(self, state: dict) -> None:
        state["parts"] = [np.load(p[1], mmap_mode="r") if isinstance(p, tuple) else p for p in state["parts"]]
        self.__dict__.update(state)


@dataclass(frozen=True)
class Batch:
    """This rank's share of one global batch: positions in the data, host frames (raw dtype,
    pinned on CUDA), and the global batch's size."""

    idx: torch.Tensor
    frames: torch.Tensor
    total: int

    def on(self, device: torch.device) -> torch.Tensor:
        """The frames as float32 on `device` (the integer copy crosses, non-blocking)."""
        return self.frames.to(device, non_blocking=True).float()


def _as_is(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


def default_workers(device: torch.device) -> int:
    """Loader processes when --workers is not given: none on the CPU (the cores train; reading a
    memory-mapped row is a copy), up to 4 per GPU process otherwise."""
    if device.type != "cuda":
        return 0
    return max(1, min(4, (len(os.sched_getaffinity(0)) // max(1, torch.cuda.device_count())) - 1))


def loader(data: FrameRows, total: int, seed: int, device: torch.device, workers: int | None) -> DataLoader:
    """Batches of this rank's share (`total` // ranks) of each global batch of `total`, shuffled by
    DistributedSampler with `seed` (call `.batch_sampler.sampler.set_epoch`), the last partial one
    dropped; `workers` loader processes (None: `default_workers`), pinned memory on CUDA."""
    sampler = DistributedSampler(data, num_replicas=distributed.size(), rank=distributed.rank(), shuffle=True,
                                 seed=seed, drop_last=True)
    workers = default_workers(device) if workers is None else workers
    return DataLoader(data, batch_sampler=BatchSampler(sampler, total // distributed.size(), drop_last=True),
                      num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      collate_fn=_as_is)
