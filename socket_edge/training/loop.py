"""The one training loop of train-source, adapt and distill. It owns the data order (a seeded
generator), SHOT's learning-rate schedule, bf16 autocast on CUDA, the NaN stop, the progress bar,
the metrics line of each epoch and, given a run folder, its files and --resume. A command gives
a `Task`: its step (a batch → loss terms), its epoch-start work and its evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from socket_edge.errors import UsageError
from socket_edge.models.torch_utils import autocast, lr_schedule
from socket_edge.progress import bar
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

    def step(self, idx: torch.Tensor, generator: torch.Generator, done: float) -> tuple[torch.Tensor, Terms]:
        """The loss of the batch `idx` (positions in the data) and its named terms, under autocast;
        `generator` draws the augmentation, `done` is the fraction of training done."""
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


def fit(task: Task, *, data_size: int, batch_size: int, epochs: int, seed: int, device: torch.device,
        run: Run | None = None, progress: bool = True) -> list[dict]:
    """Train `task` for `epochs` over `data_size` items in batches of `batch_size` (a last partial
    batch is dropped); returns the metrics lines."""
    generator = torch.Generator().manual_seed(seed)
    history, first_epoch = _start(task, generator, epochs, run, progress)
    batch = min(batch_size, data_size)
    steps = max(1, data_size // batch)
    for epoch in range(first_epoch, epochs):
        task.start_epoch(epoch)
        task.model.train()
        sums: Terms = {}
        order = torch.randperm(data_size, generator=generator)
        for step in bar(range(steps), desc=f"epoch {epoch + 1}/{epochs}", enabled=progress, leave=False):
            done = (epoch * steps + step) / (epochs * steps)
            lr_schedule(task.optimizer, done)
            with autocast(device):
                loss, terms = task.step(order[step * batch:(step + 1) * batch], generator, done)
            task.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            task.optimizer.step()
            task.after_step()
            for key, value in {"loss": loss, **terms}.items():
                sums[key] = sums.get(key, 0.0) + value.detach().double()
        history.append(task.evaluate(epoch + 1, _means(sums, steps, epoch, task.nan_hint)))
        if run is not None:
            run.folder.write_metrics(history)
            run.folder.save_checkpoint(epoch + 1, run.settings, task.model, task.optimizer, generator, history,
                                       task.state())
        if progress:
            print(task.describe(history[-1]), flush=True)
    return history


def _start(task: Task, generator: torch.Generator, epochs: int, run: Run | None,
           progress: bool) -> tuple[list[dict], int]:
    """(history, first epoch to train): an interrupted run's, or a new run's with its epoch-0 line."""
    if run is not None and run.resume:
        restored = run.folder.restore_checkpoint(run.settings, task.model, task.optimizer, generator)
        if restored is not None:
            history, epoch, state = restored
            task.restore(state)
            print(f"resuming {run.folder.root} after epoch {epoch}/{epochs}", flush=True)
            return history, epoch
        print(f"resuming {run.folder.root} from the start: no epoch had been saved", flush=True)
    if run is not None:
        run.folder.write_json(run.folder.config, run.settings if run.config is None else run.config)
    history = [task.evaluate(0, {})] if task.evaluates_start else []
    if run is not None:
        run.folder.write_metrics(history)
    if progress and history:
        print(task.describe(history[0]), flush=True)
    return history, 0


def _means(sums: Terms, steps: int, epoch: int, nan_hint: str) -> dict[str, float]:
    """The epoch's mean loss terms, read from the device at once; a loss that is not a number
    stops the run before the epoch is saved."""
    means = dict(zip(sums, (torch.stack(list(sums.values())).cpu() / steps).tolist()))
    if not all(math.isfinite(v) for v in means.values()):
        terms = ", ".join(f"{k} {v:.3g}" for k, v in means.items() if k != "loss")
        raise UsageError(f"the loss became {means['loss']} in epoch {epoch + 1}; {nan_hint} (terms: {terms})")
    return {k: round(v, 5) for k, v in means.items()}
