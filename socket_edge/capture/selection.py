"""Which frames to keep: every Nth (`every`), or only one that differs from the last kept frame by
more than `min_change` — the mean absolute difference, in grey levels (0–255), of 32×24 grey copies
of the colour frames: near-duplicates cost adaptation time and add nothing."""

from __future__ import annotations

import cv2
import numpy as np

THUMBNAIL = (32, 24)  # width, height of the copies compared by --min-change


def thumbnail(colour: np.ndarray) -> np.ndarray:
    """A small grey float copy of an H×W×3 RGB uint8 frame."""
    grey = cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.float32)


class Selector:
    """keep(colour) says whether to keep the next frame; at most one rule is given (none: keep all)."""

    def __init__(self, every: int | None = None, min_change: float | None = None) -> None:
        self.every, self.min_change = every, min_change
        self.seen = 0
        self.last: np.ndarray | None = None

    def keep(self, colour: np.ndarray) -> bool:
        self.seen += 1
        if self.every is not None:
            return (self.seen - 1) % self.every == 0
        if self.min_change is None:
            return True
        small = thumbnail(colour)
        if self.last is not None and float(np.abs(small - self.last).mean()) <= self.min_change:
            return False
        self.last = small
        return True
