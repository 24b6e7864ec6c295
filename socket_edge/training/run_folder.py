"""The run folder of a trainer (adapt, distill): config.json, metrics.jsonl (one line per epoch),
steps.jsonl (the loss terms of every step), curves.png and, until the output is written, checkpoint.pt for --resume.

The folder is named after the output's whole name (adapted.pt → adapted.pt-run/, so two outputs
never share one) and carries a marker file: a command empties or resumes only a folder with the
marker, one that socket-edge made; any other folder of that name is the user's and is refused,
with or without --overwrite.

A run is finished once its output exists and its checkpoint is gone. Every file is written
atomically, so a run stopped anywhere (Ctrl-C, a kill, a full disk) leaves a folder that --resume
continues: from the last saved epoch, or from the start when no epoch was saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from socket_edge import atomic, jsontext
from socket_edge.data.identity import changed
from socket_edge.errors import ArtifactError, UsageError

LOSS_KEYS = ("loss", "l_ent", "l_div", "l_pl", "l_ti", "l_d")


MARKER = ".socket-edge-run"  # in every run folder socket-edge made

CHECKPOINT_KEYS = {"epoch", "settings", "model", "optimizer", "generator", "torch_rng", "history", "extra"}


def _why(value: object) -> str:
    """What a damaged settings file holds instead of a JSON object, in words."""
    if isinstance(value, OSError):
        return value.strerror or str(value)
    if isinstance(value, ValueError):
        return str(value).splitlines()[0][:120]
    return f"a JSON {type(value).__name__}, not an object"


def run_folder_for(out: Path) -> Path:
    """The run folder beside a trainer's output, named after its whole name: adapted.pt → adapted.pt-run/."""
    out = Path(out)
    return out.with_name(out.name + "-run")


def refuse_foreign(root: Path) -> None:
    """A UsageError when a file, a link, or a non-empty folder without the marker has the name of
    a folder socket-edge writes (a run folder): it is not ours, and nothing in it is ever deleted
    or written over."""
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise UsageError(f"{root} is a {'link' if root.is_symlink() else 'file'}, where a folder of socket-edge's "
                         "goes; it is never replaced: move it away, or choose another --out")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise UsageError(f"{root} exists and was not made by socket-edge (it has no {MARKER} marker), and this "
                         "command writes a folder there; it is never deleted or written into: move it away, or "
                         "choose another --out")


def mark(root: Path) -> None:
    """Make `root` (after refuse_foreign) and put the marker in it: from now on it is socket-edge's."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / MARKER).is_file():
        atomic.write_text(root / MARKER, "made by socket-edge; --overwrite of its output deletes it\n")


class RunFolder:
    """Paths and writers of one run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.json"
        self.metrics = root / "metrics.jsonl"
        self.steps = root / "steps.jsonl"
        self.checkpoint = root / "checkpoint.pt"
        self.curves = root / "curves.png"

    def prepare(self, out: Path, resume: bool, overwrite: bool, example: str) -> None:
        """Refuse to clobber a run, or to resume a finished one or none, before anything is read or
        written; with `overwrite`, empty the folder of an earlier run. `example`: a file name for --out."""
        if out.is_dir():
            raise UsageError(f"--out {out} is a folder; give a file name such as {out}/{example}")
        refuse_foreign(self.root)
        if resume:
            if not self.checkpoint.is_file() and out.is_file():
                raise UsageError(f"nothing to resume: the run in {self.root} has finished ({out} was written); "
                                 "start a new run with --overwrite")
            if not self.root.is_dir():
                raise UsageError(f"nothing to resume: {self.root} does not exist; start the run without --resume")
            return
        if self.root.exists() and any(self.root.iterdir()):
            if not overwrite:
                finished = out.is_file() and not self.checkpoint.is_file()
                hint = "pass --overwrite to replace it" if finished else "pass --resume to continue it"
                raise UsageError(f"run folder {self.root} already holds a run; {hint}, or choose another --out")
            shutil.rmtree(self.root)

    def save_checkpoint(self, epoch: int, settings: dict, model, optimizer, generator, history: list[dict],
                        extra: dict | None = None) -> None:
        """Everything --resume needs after a finished epoch (atomically): weights, optimizer,
        the data-order generator, torch's RNG, the metrics so far and the trainer's `extra` state."""
        import torch

        from socket_edge.models.artifact import torch_save

        torch_save({
            "epoch": epoch, "settings": settings, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "history": history,
            "extra": extra or {},
        }, self.checkpoint)

    def restore_checkpoint(self, settings: dict, model, optimizer, generator) -> tuple[list[dict], int, dict] | None:
        """Load an interrupted run started with these settings into model, optimizer, generator and
        torch's RNG; returns (history, last finished epoch, the trainer's extra state), or None when
        the run stopped before its first checkpoint (it starts again from the beginning)."""
        import torch

        from socket_edge.models.torch_utils import load_tensors

        if not self.checkpoint.is_file():
            plain = json.loads(jsontext.dumps(settings))
            started = self._read_config() if self.config.is_file() else plain
            self._check_settings({key: started.get(key) for key in plain}, settings)
            return None
        fix = "Delete it to start the run again, or start a new run with --overwrite"
        state = load_tensors(self.checkpoint, "a checkpoint socket-edge wrote", fix)
        if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state) or not isinstance(state["settings"], dict):
            raise ArtifactError(f"{self.checkpoint} is damaged (it does not hold a run's epoch, settings, weights and "
                                f"optimizer state); {fix}")
        self._check_settings(state["settings"], settings)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        return state["history"], state["epoch"], state["extra"]

    def _read_config(self) -> dict:
        """The settings a run was started with (config.json); one line when the file is damaged."""
        try:
            started = jsontext.loads(self.config.read_bytes())
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            started = exc
        if not isinstance(started, dict):
            raise ArtifactError(f"{self.config} is damaged ({_why(started)}); start a new run with --overwrite")
        return started

    def _check_settings(self, started: dict, settings: dict) -> None:
        started, plain = json.loads(jsontext.dumps(started)), json.loads(jsontext.dumps(settings))
        then, now = (dict(s.get("inputs") or {}) for s in (started, plain))
        same_paths = {k: v for k, v in then.items() if k != "identity"} == \
            {k: v for k, v in now.items() if k != "identity"}
        moved = changed(then.get("identity"), now.get("identity") or {}) if same_paths else []
        if moved:
            raise UsageError(f"{', '.join(moved)} changed since the run in {self.root} started (other files or "
                             "contents at the same path); resume only with the inputs it started with, or start a "
                             "new run with --overwrite")
        if started != plain:
            raise UsageError(
                f"the run in {self.root} was started with other settings or inputs ({differences(started, plain)}); "
                "resume with the same command, or start a new run with --overwrite"
            )

    def write_json(self, path: Path, data: dict) -> None:
        """Write a JSON file atomically. config.json is a run's first file: the folder gets its
        marker before it (a command refused before its run starts leaves no folder)."""
        mark(self.root)
        atomic.write_text(path, jsontext.dumps(data, indent=2) + "\n")

    def append_steps(self, epoch: int, names: list[str], per_step: list[list[float]]) -> None:
        """Add the loss terms of every step of `epoch` to steps.jsonl (one line per step)."""
        lines = [jsontext.dumps({"epoch": epoch, "step": i + 1, **dict(zip(names, (round(v, 6) for v in row)))})
                 for i, row in enumerate(per_step)]
        old = self.steps.read_text() if self.steps.is_file() else ""
        atomic.write_text(self.steps, old + "".join(line + "\n" for line in lines))

    def trim_steps(self, epoch: int) -> None:
        """Keep the steps.jsonl lines of the first `epoch` epochs (a resumed run redoes the rest)."""
        if self.steps.is_file():
            kept = [line for line in self.steps.read_text().splitlines() if json.loads(line)["epoch"] <= epoch]
            atomic.write_text(self.steps, "".join(line + "\n" for line in kept))

    def write_metrics(self, history: list[dict]) -> None:
        """Rewrite metrics.jsonl from the history (atomically, so a resumed run never repeats lines)."""
        atomic.write_text(self.metrics, "".join(jsontext.dumps(entry) + "\n" for entry in history))


def plot_loss_terms(ax, history: list[dict], keys: tuple[str, ...]) -> None:
    """The curves.png panel of the mean loss terms in `keys` (those logged every epoch) per epoch."""
    trained = [h for h in history if h["epoch"] > 0]
    for key in keys:
        values = [h.get(key) for h in trained]
        if trained and all(v is not None for v in values):
            ax.plot([h["epoch"] for h in trained], values, marker=".", label=key)
    ax.set_title("loss terms" if trained else "loss terms (no training)")
    ax.set_xlabel("epoch")
    if trained:
        ax.legend(fontsize=7)


def differences(started: dict, now: dict, limit: int = 3) -> str:
    """Which settings differ, as 'config.lr 0.01 then, 0.02 now' (a key missing then: a run from an
    earlier version); at most `limit` of them."""
    found: list[str] = []

    def walk(a: object, b: object, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in [*a, *(k for k in b if k not in a)]:
                walk(a.get(key, _ABSENT), b.get(key, _ABSENT), f"{path}.{key}" if path else key)
        elif a != b:
            then = "absent then (a run of an earlier version)" if a is _ABSENT else f"{a} then"
            found.append(f"{path} {then}, {'absent' if b is _ABSENT else b} now")

    walk(started, now, "")
    return "; ".join(found[:limit]) + (f"; {len(found) - limit} more" if len(found) > limit else "")


_ABSENT = object()

