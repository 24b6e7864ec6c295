"""The one training loop of train-source, adapt and distill. It owns the data (a DataLoader over
this rank's share of each global batch, DistributedSampler's seeded order), the augmentation's
seeded generator, SHOT's learning-rate schedule, bf16 autocast on CUDA, the NaN stop, the progress
bar, the metrics line of each epoch (loss terms averaged over the ranks) and, given a run folder,
its files (rank 0 alone) and --resume. A command gives a `Task`: its step (a batch → loss terms),
its epoch-start work and its evaluation. Under torchrun the task's model is wrapped in DDP by the
task itself (distributed.parallel)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from socket_edge.errors import UsageError
from socket_edge.models.torch_utils import autocast, lr_schedule
from socket_edge.progress import bar
from socket_edge.training import distributed
from socket_edge.training.batches import Batch, FrameRows, loader
from socket_edge.training.run_folder import RunFolder

Terms = dict[str, torch.Tensor]


class Task:
    """What a command gives the loop: `model` and `optimizer` (trained and checkpointed) and the
    methods below; `evaluates_start`: an epoch-0 line (the untrained model) opens the history."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    nan_hint = "lower --lr"
    evaluates_start = True

    def start_epoch(self, epoch: int) -> None:
        """Work before the steps of epoch `epoch` (0-based): pseudo-labels, banks."""

    def step(self, batch: Batch, generator: torch.Generator, done: float) -> tuple[torch.Tensor, Terms]:
        """The loss of this rank's share of a batch and its named terms, under autocast: a mean over
        the share's images plus terms of the global batch (the same on every rank), so that DDP's
        average of the gradients is the one-process gradient. `generator` (the same on every rank)
        draws the augmentation for the global batch; `done` is the fraction of training done."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Work after each optimizer step (a mean teacher follows the model)."""

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        """The metrics line of the model after `epoch` epochs, given the epoch's mean loss terms."""
        raise NotImplementedError

    def describe(self, entry: dict) -> str:
        """The log line of a metrics line."""
        raise NotImplementedError

    def state(self) -> dict:
        """The task's own state that --resume needs (saved in each checkpoint)."""
        return {}

    def restore(self, state: dict) -> None:
        """Take back `state()` of an interrupted run."""


@dataclass(frozen=True)
class Run:
    """A resumable run: its folder, the settings a resumed run must match, whether to resume, and
    what config.json records (the settings when None)."""

    folder: RunFolder
    settings: dict
    resume: bool = False
    config: dict | None = None


def on_device(model: nn.Module, device: torch.device) -> nn.Module:
    """The model on `device`, channels_last on CUDA (faster convolutions under bf16)."""
    model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def fit(task: Task, *, data: FrameRows, batch_size: int, epochs: int, seed: int, device: torch.device,
        run: Run | None = None, progress: bool = True, workers: int | None = None) -> list[dict]:
    """Train `task` for `epochs` over `data` in global batches of `batch_size` (a last partial
    batch is dropped; each rank takes an equal share); `workers`: DataLoader processes (None: the
    default of batches.default_workers). Returns the metrics lines (the same on every rank)."""
    progress = progress and distributed.is_main()
    generator = torch.Generator().manual_seed(seed)
    history, first_epoch = _start(task, generator, epochs, run, progress)
    total = distributed.global_batch(batch_size, len(data))
    batches = loader(data, total, seed, device, workers)
    steps = max(1, len(batches))
    for epoch in range(first_epoch, epochs):
        task.start_epoch(epoch)
        task.model.train()
        batches.batch_sampler.sampler.set_epoch(epoch)
        logged: list[torch.Tensor] = []
        names: list[str] = []
        for step, (idx, frames) in enumerate(bar(batches, desc=f"epoch {epoch + 1}/{epochs}", enabled=progress,
                                                 leave=False)):
            done = (epoch * steps + step) / (epochs * steps)
            lr_schedule(task.optimizer, done)
            with autocast(device):
                loss, terms = task.step(Batch(idx, frames, total), generator, done)
            task.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            task.optimizer.step()
            task.after_step()
            names = ["loss", *terms]
            logged.append(torch.stack([loss.detach().double(), *(v.detach().double() for v in terms.values())]))
        per_step = distributed.mean_over_ranks(torch.stack(logged)).cpu()
        history.append(task.evaluate(epoch + 1, _means(names, per_step, epoch, task.nan_hint)))
        if run is not None and distributed.is_main():
            run.folder.write_metrics(history)
            run.folder.append_steps(epoch + 1, names, per_step.tolist())
            run.folder.save_checkpoint(epoch + 1, run.settings, task.model, task.optimizer, generator, history,
                                       task.state())
        if progress:
            print(task.describe(history[-1]), flush=True)
    distributed.barrier()  # no rank leaves (and rank 0 writes the result) before every rank has finished
    return history


def _start(task: Task, generator: torch.Generator, epochs: int, run: Run | None,
           progress: bool) -> tuple[list[dict], int]:
    """(history, first epoch to train): an interrupted run's, or a new run's with its epoch-0 line."""
    if run is not None and run.resume:
        restored = run.folder.restore_checkpoint(run.settings, task.model, task.optimizer, generator)
        if restored is not None:
            history, epoch, state = restored
            task.restore(state)
            if distributed.is_main():
                run.folder.trim_steps(epoch)
            if distributed.is_main():
                print(f"resuming {run.folder.root} after epoch {epoch}/{epochs}", flush=True)
            return history, epoch
        if distributed.is_main():
            print(f"resuming {run.folder.root} from the start: no epoch had been saved", flush=True)
    if run is not None and distributed.is_main():
        run.folder.trim_steps(0)
        run.folder.write_json(run.folder.config, run.settings if run.config is None else run.config)
    history = [task.evaluate(0, {})] if task.evaluates_start else []
    if run is not None and distributed.is_main():
        run.folder.write_metrics(history)
    if progress and history:
        print(task.describe(history[0]), flush=True)
    return history, 0


def _means(names: list[str], per_step: torch.Tensor, epoch: int, nan_hint: str) -> dict[str, float]:
    """The epoch's mean loss terms (`per_step`: steps × terms, already averaged over the ranks); a
    loss that is not a number stops the run (on every rank alike) before the epoch is saved."""
    means = dict(zip(names, per_step.mean(dim=0).tolist()))
    if not all(math.isfinite(v) for v in means.values()):
        terms = ", ".join(f"{k} {v:.3g}" for k, v in means.items() if k != "loss")
        raise UsageError(f"the loss became {means['loss']} in epoch {epoch + 1}; {nan_hint} (terms: {terms})",
                         everywhere=True)
    return {k: round(v, 5) for k, v in means.items()}
