"""The training loop on a task of a few lines: mean terms per epoch, the NaN stop, resume."""

import json

import pytest
import torch
from torch import nn

from socket_edge.errors import UsageError
from socket_edge.training.batches import FrameRows
from socket_edge.training.loop import Run, Task, fit
from socket_edge.training.run_folder import RunFolder

X, Y = torch.randn(40, 3, generator=torch.Generator().manual_seed(1)), torch.randn(40, 1)
DATA = FrameRows([X.numpy()])


class Regression(Task):
    """Least squares on X → Y, with a term that can be made to explode."""

    def __init__(self, blow_up: bool = False) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(3, 1)
        self.optimizer = torch.optim.SGD([{"params": self.model.parameters(), "lr0": 0.1}], lr=0.1)
        self.blow_up = blow_up

    def step(self, batch, generator, done):
        idx = batch.idx
        assert torch.equal(batch.frames, X[idx])
        noise = 0.01 * torch.randn(len(idx), 1, generator=generator)
        l_fit = ((self.model(X[idx]) - Y[idx] - noise) ** 2).mean()
        l_big = l_fit * (float("inf") if self.blow_up else 0.0)
        return l_fit + l_big, {"l_fit": l_fit, "l_big": l_big}

    def evaluate(self, epoch, losses):
        return {"epoch": epoch, **losses}

    def describe(self, entry):
        return f"epoch {entry['epoch']}"


def test_terms_are_epoch_means_and_the_start_is_evaluated(capsys):
    history = fit(Regression(), data=DATA, batch_size=8, epochs=2, seed=0, device=torch.device("cpu"))
    assert [h["epoch"] for h in history] == [0, 1, 2] and set(history[1]) == {"epoch", "loss", "l_fit", "l_big"}
    assert history[1]["loss"] == history[1]["l_fit"] > history[2]["l_fit"]
    assert capsys.readouterr().out.splitlines() == ["epoch 0", "epoch 1", "epoch 2"]


def test_a_loss_that_is_not_a_number_stops_before_the_epoch_is_saved(tmp_path):
    run = Run(RunFolder(tmp_path / "run"), {"x": 1})
    (tmp_path / "run").mkdir()
    with pytest.raises(UsageError, match=r"the loss became nan in epoch 1; lower --lr \(terms: l_fit nan, l_big nan\)"):
        fit(Regression(blow_up=True), data=DATA, batch_size=8, epochs=2, seed=0, device=torch.device("cpu"),
            run=run, progress=False)
    assert not run.folder.checkpoint.exists() and run.folder.metrics.read_text().count("\n") == 1


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    args = dict(data=DATA, batch_size=8, epochs=3, seed=5, device=torch.device("cpu"), progress=False)
    straight = Regression()
    fit(straight, **args)
    real_save = RunFolder.save_checkpoint

    def save_then_stop(folder, epoch, *rest):
        real_save(folder, epoch, *rest)
        if epoch == 1:
            raise KeyboardInterrupt

    (tmp_path / "run").mkdir()
    monkeypatch.setattr(RunFolder, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        fit(Regression(), **args, run=Run(RunFolder(tmp_path / "run"), {"x": 1}))
    monkeypatch.undo()
    resumed = Regression()
    history = fit(resumed, **args, run=Run(RunFolder(tmp_path / "run"), {"x": 1}, resume=True))
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert torch.equal(straight.model.weight, resumed.model.weight)
    steps = [json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert [(s["epoch"], s["step"]) for s in steps] == [(e, i) for e in (1, 2, 3) for i in range(1, 6)]
    assert sum(s["l_fit"] for s in steps if s["epoch"] == 3) / 5 == pytest.approx(history[3]["l_fit"], abs=1e-5)


def test_resuming_with_other_settings_names_what_differs(tmp_path, monkeypatch):
    """A checkpoint from an earlier version (a config key it did not have) or another command is
    refused with the keys that differ, before any weight is loaded."""
    args = dict(data=DATA, batch_size=8, epochs=2, seed=5, device=torch.device("cpu"), progress=False)
    real_save = RunFolder.save_checkpoint

    def save_then_stop(folder, epoch, *rest):
        real_save(folder, epoch, *rest)
        raise KeyboardInterrupt

    (tmp_path / "run").mkdir()
    monkeypatch.setattr(RunFolder, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        fit(Regression(), **args, run=Run(RunFolder(tmp_path / "run"), {"config": {"lr": 0.01}}))
    monkeypatch.undo()
    newer = {"config": {"lr": 0.02, "ti_adapter": False}}
    with pytest.raises(UsageError) as refused:
        fit(Regression(), **args, run=Run(RunFolder(tmp_path / "run"), newer, resume=True))
    assert str(refused.value) == (
        f"the run in {tmp_path / 'run'} was started with other settings or inputs (config.lr 0.01 then, 0.02 now; "
        "config.ti_adapter absent then (a run of an earlier version), False now); resume with the same command, "
        "or start a new run with --overwrite")
