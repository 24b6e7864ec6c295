"""The run folder of an adaptation (and of a distillation): config.json, metrics.jsonl (one line
per epoch), curves.png (loss terms, ζ, accuracy) and, while it runs, checkpoint.pt for --resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from socket_edge import atomic
from socket_edge.errors import UsageError

LOSS_KEYS = ("loss", "l_ent", "l_div", "l_pl", "l_ti", "l_d")


def run_folder_for(out: Path) -> Path:
    """The default run folder beside a trainer's output: adapted.pt → adapted-run/."""
    return out.with_name(out.stem + "-run")


class RunFolder:
    """Paths and writers of one run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config.json"
        self.metrics = root / "metrics.jsonl"
        self.checkpoint = root / "checkpoint.pt"
        self.curves = root / "curves.png"

    def prepare(self, out: Path, resume: bool, overwrite: bool, example: str) -> None:
        """Refuse to clobber a run, or to resume none, before anything is read or written; with
        `overwrite`, empty the folder of an earlier run. `example`: a file name for --out."""
        if out.is_dir():
            raise UsageError(f"--out {out} is a folder; give a file name such as {out}/{example}")
        if resume:
            if not self.checkpoint.is_file():
                done = " (that run has finished)" if self.metrics.is_file() else ""
                raise UsageError(f"nothing to resume: {self.checkpoint} does not exist{done}")
            return
        if self.root.exists() and any(self.root.iterdir()):
            if not overwrite:
                hint = "pass --resume to continue it" if self.checkpoint.is_file() else "pass --overwrite to replace it"
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

    def restore_checkpoint(self, settings: dict, model, optimizer, generator) -> tuple[list[dict], int, dict]:
        """Load an interrupted run started with these settings into model, optimizer, generator and
        torch's RNG; returns (history, last finished epoch, the trainer's extra state)."""
        import torch

        state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        if state["settings"] != settings:
            raise UsageError(
                f"the run in {self.root} was started with other settings or inputs; resume with the same "
                "command, or start a new run with --overwrite"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        return state["history"], state["epoch"], state["extra"]

    def write_json(self, path: Path, data: dict) -> None:
        """Write a JSON file atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)

    def write_metrics(self, history: list[dict]) -> None:
        """Rewrite metrics.jsonl from the history (atomically, so a resumed run never repeats lines)."""
        atomic.write_text(self.metrics, "".join(json.dumps(entry) + "\n" for entry in history))


def save_figure(fig, out: Path) -> Path:
    """Write a matplotlib figure as a PNG atomically, and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        atomic.write_with(out, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)
    return out
