"""Classification metrics: accuracy, per-class accuracy, the confusion matrix (plain numpy)."""

from __future__ import annotations

import numpy as np


def confusion(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    return matrix


def metrics(labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...] | list[str]) -> dict:
    """Accuracy (%), per-class accuracy (%) for classes present in `labels`, the confusion matrix."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(probs).argmax(axis=1)
    matrix = confusion(labels, preds, len(class_names))
    per_class = {
        name: round(100.0 * float(matrix[i, i]) / float(matrix[i].sum()), 2)
        for i, name in enumerate(class_names) if matrix[i].sum() > 0
    }
    return {
        "accuracy": round(100.0 * float((preds == labels).mean()), 2) if len(labels) else 0.0,
        "n": int(len(labels)),
        "per_class": per_class,
        "classes": list(class_names),
        "confusion": matrix.tolist(),
    }
