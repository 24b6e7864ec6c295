"""The curves of an adaptation run: loss terms, ζ and (when known) accuracy per epoch."""

from __future__ import annotations

from pathlib import Path

from socket_edge.plotting import figure, save_png
from socket_edge.training.run_folder import LOSS_KEYS, plot_loss_terms


def plot_curves(history: list[dict], out: Path, title: str) -> Path:
    """Loss terms, ζ and (when known) accuracy per epoch, one PNG."""
    has_acc = any("accuracy" in h for h in history)
    fig = figure((13 if has_acc else 9, 3.4))
    axes = fig.subplots(1, 3 if has_acc else 2)
    plot_loss_terms(axes[0], history, LOSS_KEYS)
    ax = axes[1]
    zetas = [h["zeta"] for h in history]
    for k in range(len(zetas[0]) if zetas else 0):
        ax.plot([h["epoch"] for h in history], [z[k] for z in zetas], marker=".", label=f"source {k + 1}")
    ax.set_ylim(0, 1)
    ax.set_title("ζ")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
    if has_acc:
        ax = axes[2]
        points = [(h["epoch"], h["accuracy"]) for h in history if "accuracy" in h]
        ax.plot(*zip(*points), marker="o")
        ax.set_title("target accuracy (%), eval data")
        ax.set_xlabel("epoch (0 = unadapted)")
    fig.suptitle(title, fontsize=9)
    return save_png(fig, out)
