"""train-source, adapt and distill under torchrun: PyTorch's own process group (NCCL on GPUs, gloo
on CPUs), DistributedDataParallel for the gradients, SyncBatchNorm for the batch statistics and
the few collectives the methods need beyond them (pseudo-label scans, L_div and L_d on the global
batch). Without torchrun (WORLD_SIZE unset or 1) every function here is the one-process identity.

The rank is read from torchrun's environment, so it is known before the group is joined: rank 0
alone claims, prints and writes (atomic.py refuses a write from another rank)."""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn

from socket_edge.errors import UsageError


def size() -> int:
    """The number of processes of the job (torchrun's WORLD_SIZE; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (torchrun's RANK; 0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0: the one process that prints and writes."""
    return rank() == 0


def share() -> tuple[int, int]:
    """(rank, size): which rows of a global batch this rank holds (torch_utils.augment's `share`)."""
    return rank(), size()


def active() -> bool:
    """Whether this process is one of several joined by torchrun."""
    return size() > 1 and dist.is_available() and dist.is_initialized()


def join(device: torch.device) -> torch.device:
    """Under torchrun, join the process group (NCCL for CUDA, gloo for the CPU) once and return
    this rank's device (cuda:LOCAL_RANK on a GPU machine); without torchrun, `device` unchanged."""
    if size() == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
        global _methods
        _methods = dist.new_group()
        atexit.register(_leave)
    return device


# The methods' own collectives (the global batch's statistics, scans) run in a group of their own:
# in the default group they would interleave with DDP's asynchronous gradient buckets during the
# backward pass, and gloo would pair one layer's statistics with another layer's of the same size.
_methods = None


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (nothing without torchrun)."""
    if active():
        dist.barrier()


@contextmanager
def local_main_first() -> Iterator[None]:
    """The block runs on each machine's first process first (it builds the frame cache), then on
    the others (they read it); a failure there ends the job, the others never start the block."""
    first = int(os.environ.get("LOCAL_RANK", "0")) == 0
    if not first:
        barrier()
    yield
    if first:
        barrier()


def global_batch(batch_size: int, n: int) -> int:
    """The global batch (--batch-size, at most the data), checked to split evenly over the ranks."""
    total = min(batch_size, n)
    if total < 2:
        raise UsageError(f"a batch of {total} frame cannot train BatchNorm layers; give at least 2 images",
                         everywhere=True)
    if total % size():
        raise UsageError(f"the batch of {total} does not split over {size()} processes; pass a --batch-size "
                         f"divisible by {size()} (it is the global batch: each process takes an equal share)",
                         everywhere=True)
    return total


def shard(n: int) -> slice:
    """This rank's contiguous share of n rows (scans of a whole data set)."""
    return slice(n * rank() // size(), n * (rank() + 1) // size())


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_shards(local: torch.Tensor, n: int) -> torch.Tensor:
    """The rows of every rank's `shard(n)` in order (every rank gets all n): `local` is this rank's."""
    if not active():
        return local
    counts = [n * (r + 1) // size() - n * r // size() for r in range(size())]
    width = max(counts)
    padded = local.new_zeros((width, *local.shape[1:]))
    padded[:len(local)] = local
    padded = padded.to(_comm_device())
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded, group=_methods)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).to(local.device)


def predict_all(model: nn.Module, frames, device: torch.device):
    """torch_utils.predict over all frames, each rank predicting its shard (every rank gets all)."""
    from socket_edge.models.torch_utils import predict

    own = predict(model, frames[shard(len(frames))], device)
    return gather_shards(torch.from_numpy(own), len(frames)).numpy()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The mean of `values` over the ranks (logged loss terms); not differentiable."""
    if not active():
        return values
    values = values.to(_comm_device()).clone()
    dist.all_reduce(values, group=_methods)
    return values / size()


def global_sum(values: torch.Tensor) -> torch.Tensor:
    """Σ over the ranks, differentiable: each rank's loss may use the global batch's statistics,
    and DDP's averaging of the gradients then gives the one-process gradient."""
    if not active():
        return values
    from torch.distributed import _functional_collectives as functional  # the differentiable all-reduce

    return functional.wait_tensor(functional.all_reduce(values, "sum", _methods))


def moments(x: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-channel mean, biased variance, count) of N×C×… activations over the global batch, as
    SyncBatchNorm computes them: per-channel sums and sums of squares all-reduced (shifted by
    `shift`, e.g. the running mean, against cancellation; float64 on the CPU). Differentiable."""
    dims = [0, *range(2, x.dim())]
    dtype = torch.float64 if x.device.type == "cpu" else torch.float32
    c = (shift.detach() if shift is not None else x.detach().mean(dim=dims)).to(dtype)
    view = [1, -1] + [1] * (x.dim() - 2)
    centred = x.to(dtype) - c.view(view)
    count = torch.full((1,), x.numel() // x.shape[1], dtype=dtype, device=x.device)
    totals = global_sum(torch.cat([centred.sum(dim=dims), (centred * centred).sum(dim=dims), count]))
    channels = x.shape[1]
    n = totals[-1]
    mean_c = totals[:channels] / n
    var = (totals[channels:2 * channels] / n - mean_c * mean_c).clamp_min(0)
    out = x.dtype if x.is_floating_point() else torch.float32
    return (c + mean_c).to(out), var.to(out), n


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch on the CPU (gloo), where PyTorch's SyncBatchNorm does not
    run: the statistics come from `moments`, the running ones update as SyncBatchNorm's do. The
    state dict keeps BatchNorm's keys."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        mean, var, n = moments(x, self.running_mean)
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * (n / (n - 1)).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        view = [1, -1] + [1] * (x.dim() - 2)
        y = (x - mean.view(view)) * torch.rsqrt(var.view(view) + self.eps)
        return y * self.weight.view(view) + self.bias.view(view) if self.affine else y


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Under torchrun, every BatchNorm layer of `module` normalises with the global batch's
    statistics: PyTorch's SyncBatchNorm on GPUs, GlobalBatchNorm on the CPU (the state dict keeps
    BatchNorm's keys); unchanged without torchrun."""
    if size() == 1:
        return module
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.__class__ = GlobalBatchNorm
    return module


def parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` wrapped in DistributedDataParallel under torchrun (its gradients averaged over the
    ranks after each backward), else `module` itself."""
    if not active():
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)


def take_share(rows: torch.Tensor) -> torch.Tensor:
    """This rank's rows of something drawn for the global batch: rows rank, rank + size, … (the
    positions DistributedSampler gives this rank within each global batch)."""
    return rows[rank()::size()] if size() > 1 else rows

