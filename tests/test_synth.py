"""The synthetic scene generator: layout, file formats, plausible depth, determinism,
atomic output, clear errors, and classes that depth (not colour) tells apart."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from socket_edge.data import synth
from socket_edge.errors import DataError

DOMAINS = ["kv1", "kv2"]


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "data"
    summary = synth.generate(out, per_class=2, size=32, seed=0, domains=DOMAINS, progress=False)
    return out, summary


def test_class_and_domain_constants() -> None:
    assert len(synth.TASK_CLASSES) >= 6 and len(synth.TI_CLASSES) >= 4
    assert not set(synth.TASK_CLASSES) & set(synth.TI_CLASSES)
    assert synth.ALL_CLASSES == synth.TASK_CLASSES + synth.TI_CLASSES
    assert len(synth.DOMAINS) >= 3
    assert all(name == d.name for name, d in synth.DOMAINS.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        synth.DOMAINS["kv1"].noise = 0.0
    # the domains really differ in optics and depth error
    assert len({d.fov_deg for d in synth.DOMAINS.values()}) >= 3
    assert len({d.noise for d in synth.DOMAINS.values()}) >= 3
    assert len({d.max_range_m for d in synth.DOMAINS.values()}) >= 3


def test_layout_counts_and_metadata(tiny: tuple[Path, dict]) -> None:
    out, summary = tiny
    assert summary["counts"] == {"kv1": 20, "kv2": 20}
    assert summary["pairs"] == 40 and summary["seconds"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["kv1", "kv2", "synth.json"]
    for domain in DOMAINS:
        assert sorted(p.name for p in (out / domain).iterdir()) == ["depth", "ir", "rgb", "ti"]
        for base, classes in ((out / domain, synth.TASK_CLASSES), (out / domain / "ti", synth.TI_CLASSES)):
            relative = {}
            for modality in ("rgb", "depth", "ir"):
                root = base / modality
                assert sorted(p.name for p in root.iterdir()) == sorted(classes)
                relative[modality] = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
            assert relative["rgb"] == relative["depth"] == relative["ir"]
            assert len(relative["rgb"]) == 2 * len(classes)
        assert sorted(str(p.relative_to(out / domain / "rgb")) for p in (out / domain / "rgb").rglob("*.png"))[:2] \
            == ["bathroom/0000.png", "bathroom/0001.png"]
    meta = json.loads((out / "synth.json").read_text())
    assert (meta["seed"], meta["size"], meta["per_class"]) == (0, 32, 2)
    assert meta["task_classes"] == list(synth.TASK_CLASSES)
    assert meta["ti_classes"] == list(synth.TI_CLASSES)
    assert list(meta["domains"]) == DOMAINS
    assert meta["domains"]["kv1"]["max_range_m"] == synth.DOMAINS["kv1"].max_range_m
    assert not list(out.parent.glob("*.partial-*"))


def test_file_formats(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    for domain in DOMAINS:
        for path in (out / domain).rglob("rgb/*/*.png"):
            rgb, depth, ir = (read(Path(str(path).replace("/rgb/", f"/{m}/"))) for m in ("rgb", "depth", "ir"))
            assert rgb.dtype == np.uint8 and rgb.shape == (32, 32, 3)
            assert depth.dtype == np.uint16 and depth.shape == (32, 32)
            assert ir.dtype == np.uint8 and ir.shape == (32, 32)


def test_files_match_render_scene_in_rgb_order(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    rgb, depth, ir = synth.render_scene("office", "kv2", 32, synth.scene_rng(0, "kv2", "office", 1))
    assert np.array_equal(cv2.cvtColor(read(out / "kv2/rgb/office/0001.png"), cv2.COLOR_BGR2RGB), rgb)
    assert np.array_equal(read(out / "kv2/depth/office/0001.png"), depth)
    assert np.array_equal(read(out / "kv2/ir/office/0001.png"), ir)


def test_depth_is_plausible_room_scale_with_some_holes(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    depths = np.stack([read(p) for p in sorted(out.glob("*/**/depth/*/*.png"))])
    valid = depths[depths > 0]
    assert 500 < np.median(valid) < 10000  # millimetres
    assert valid.max() <= 1000 * max(d.max_range_m for d in synth.DOMAINS.values()) + 500
    holes = (depths == 0).mean()
    assert 0.005 < holes < 0.5
    assert ((depths == 0).mean(axis=(1, 2)) < 0.9).all()


def test_ir_falls_off_with_distance(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    near, far = [], []
    for path in sorted(out.glob("kv2/depth/*/*.png")):
        depth, ir = read(path), read(out / "kv2/ir" / path.relative_to(out / "kv2/depth"))
        near.append(ir[(depth > 0) & (depth < 2000)])
        far.append(ir[depth > 4000])
    assert np.concatenate(near).mean() > np.concatenate(far).mean() + 20


def test_depth_noise_grows_with_distance() -> None:
    domain = synth.DOMAINS["kv2"]
    rng = np.random.default_rng(0)
    spread = {}
    for z in (1.0, 4.0):
        flat = np.full((64, 64), z)
        mm = synth._depth(flat, np.zeros((64, 64), np.int64), np.ones((64, 64)), domain, rng)
        spread[z] = mm[mm > 0].std()
    assert spread[4.0] > 8 * spread[1.0]  # sigma grows like z^2 (16x); allow for rounding to mm


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    kwargs = dict(per_class=1, size=32, domains=["rs"], classes=["kitchen", "corridor"], progress=False)
    synth.generate(tmp_path / "a", seed=3, **kwargs)
    synth.generate(tmp_path / "b", seed=3, **kwargs)
    synth.generate(tmp_path / "c", seed=4, **kwargs)
    a, b, c = (tree_bytes(tmp_path / name) for name in "abc")
    assert len(a) == 7 and a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".png"))


def test_image_does_not_depend_on_what_else_is_requested(tiny: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = tiny
    synth.generate(tmp_path / "one", per_class=2, size=32, seed=0, domains=["kv2"], classes=["staircase", "office"],
                   progress=False)
    alone = tree_bytes(tmp_path / "one" / "kv2")
    together = tree_bytes(out / "kv2")
    assert len(alone) == 12
    assert all(together[k] == v for k, v in alone.items())


def test_existing_nonempty_out_is_refused_and_untouched(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists.*delete it"):
        synth.generate(out, per_class=1, size=32, domains=["kv1"], progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_existing_empty_out_is_filled(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    synth.generate(out, per_class=1, size=32, domains=["kv1"], classes=["bedroom"], progress=False)
    assert (out / "kv1/depth/bedroom/0000.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("kwargs, names", [
    ({"domains": ["kinect9"]}, "kv1, kv2"),
    ({"classes": ["garage"]}, "bedroom, office"),
    ({"size": 16}, "32..512"),
    ({"per_class": 0}, "at least 1"),
    ({"seed": -1}, "non-negative"),
])
def test_bad_arguments_are_refused_before_writing(tmp_path: Path, kwargs: dict, names: str) -> None:
    with pytest.raises(DataError, match=names):
        synth.generate(tmp_path / "data", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_render_scene_refuses_unknown_names() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="kv1"):
        synth.render_scene("bedroom", "kinect9", 32, rng)
    with pytest.raises(DataError, match="living_room"):
        synth.render_scene("garage", "kv1", 32, rng)


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing(*args: object) -> None:
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(*args)

    real = synth.render_scene
    monkeypatch.setattr(synth, "render_scene", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        synth.generate(tmp_path / "data", per_class=2, size=32, domains=["kv1"], progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [32, 45, 128])
def test_render_sizes_and_ranges(size: int) -> None:
    rgb, depth, ir = synth.render_scene("library", synth.DOMAINS["xtion"], size, np.random.default_rng(size))
    assert rgb.shape == (size, size, 3) and depth.shape == (size, size) and ir.shape == (size, size)
    assert (rgb.dtype, depth.dtype, ir.dtype) == (np.uint8, np.uint16, np.uint8)
    assert rgb.std() > 5 and ir.std() > 5  # not blank


def _features(rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crude features: depth histogram + hole rate + 4x4 mean depth; colour mean/std + brightness histogram."""
    z = depth / 1000.0
    hist = np.histogram(z[z > 0], bins=16, range=(0, 8))[0] / z.size
    cells = [c for row in np.array_split(z, 4, 0) for c in np.array_split(row, 4, 1)]
    grid = [c[c > 0].mean() / 8 if (c > 0).any() else 0.0 for c in cells]
    depth_f = np.concatenate([hist, [(z == 0).mean()], grid])
    pixels = rgb.reshape(-1, 3) / 255
    rgb_f = np.concatenate([pixels.mean(0), pixels.std(0), np.histogram(pixels.mean(1), bins=8, range=(0, 1))[0]
                            / len(pixels)])
    return depth_f, rgb_f


def test_classes_are_told_apart_by_depth_not_colour() -> None:
    train, test = 8, 6
    feats = {c: [_features(*synth.render_scene(c, "kv2", 32, synth.scene_rng(0, "kv2", c, i))[:2])
                 for i in range(train + test)] for c in synth.ALL_CLASSES}
    accuracy = []
    for k in (0, 1):  # nearest class centroid on depth features, then on colour features
        centroids = np.array([np.mean([f[k] for f in feats[c][:train]], 0) for c in synth.ALL_CLASSES])
        hits = [np.argmin(((centroids - f[k]) ** 2).sum(1)) == label
                for label, c in enumerate(synth.ALL_CLASSES) for f in feats[c][train:]]
        accuracy.append(np.mean(hits))
    chance = 1 / len(synth.ALL_CLASSES)
    assert accuracy[0] >= 3 * chance, accuracy
    assert accuracy[1] <= 2.5 * chance, accuracy
    assert accuracy[0] > accuracy[1] + 0.15, accuracy


def test_sample_sheet(tmp_path: Path) -> None:
    path = synth.sample_sheet(tmp_path / "img" / "sheet.png", size=32, domains=["rs"], dpi=50)
    sheet = read(path)
    assert path == tmp_path / "img" / "sheet.png"
    assert sheet.ndim == 3 and sheet.shape[0] > sheet.shape[1] > 100  # rows: 10 classes; columns: 3 images
    assert [p.name for p in path.parent.iterdir()] == ["sheet.png"]
