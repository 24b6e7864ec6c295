"""Plots are PNG files drawn on their own Agg canvas: a caller's matplotlib backend and pyplot's
state stay as they were (library code never calls matplotlib.use)."""

import subprocess
import sys

import cv2


def test_the_confusion_plot_leaves_matplotlib_global_state_alone(tmp_path):
    out = tmp_path / "plots" / "cm.png"
    code = f"""
import sys
import matplotlib
matplotlib.use("svg")  # the caller's choice
from socket_edge.evaluation import plot_confusion
from socket_edge.metrics import metrics
probs = [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]
result = metrics([0, 1, 1, 2], probs, ["a", "b", "c"])
assert (result["accuracy"], result["per_class"]) == (75.0, {{"a": 100.0, "b": 50.0, "c": 100.0}})
plot_confusion(result, {str(out)!r})
assert matplotlib.get_backend() == "svg" and "matplotlib.pyplot" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(out))
    size = 1.6 + 0.55 * 3  # inches per side for three classes, at 110 dpi
    assert image.shape == (int(size * 110), int((size + 1.5) * 110), 3)
    assert [p.name for p in out.parent.iterdir()] == ["cm.png"]  # no temporary file left
