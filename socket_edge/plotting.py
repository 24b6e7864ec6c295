"""PNG figures without pyplot: a matplotlib Figure on its own Agg canvas, so that library code
never switches matplotlib's global backend nor leaves figures in pyplot's state (a caller's
notebook or GUI keeps its own). matplotlib comes with the `train` and `plot` extras."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from socket_edge.errors import require
from socket_edge import atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def figure(figsize: tuple[float, float], dpi: int = 100) -> "Figure":
    """A new Figure drawn by its own Agg canvas; one line naming the extra where matplotlib is missing."""
    require("matplotlib", "plot", needed_by="writing a plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: "Figure", out: str | Path) -> Path:
    """Lay the figure out tightly and write it as a PNG, atomically."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic.write_bytes(out, [buffer.getvalue()])
