"""`socket-edge collect` on real RealSense recordings made by pyrealsense2's software device: a colour
camera and a depth camera (with infrared #1 on its grid) of different resolutions, focal lengths and
a baseline, looking at a box in front of a wall. The written colour frame must show the box exactly
where geometry says the colour camera sees it from each depth pixel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import needs_realsense
from socket_edge.cli import main
from socket_edge.data.folders import ti_pairs, unlabeled_images, class_folders
from socket_edge.runtime.recording import Lens, recording_suffix, write_recording, write_rgbd_recording

pytestmark = needs_realsense

DEPTH_LENS = Lens(128, 96, 104.0, 100.0, 63.5, 47.5)
COLOUR_LENS = Lens(160, 120, 150.0, 144.0, 80.5, 59.0)
BASELINE = (0.04, 0.005, 0.0)  # the colour camera's place in the depth camera's frame: p_colour = p_depth + t
WALL_M, BOX_M = 2.0, 0.8
DEPTH_SCALE = 0.0001  # the recording's depth unit (0.1 mm): collect writes millimetres
BOX_RGB, WALL_RGB = (220, 40, 30), (70, 90, 110)
BOX_IR, WALL_IR = 210, 50


def box(x: np.ndarray, y: np.ndarray, shift: float) -> np.ndarray:
    """Whether a point of the box plane (depth-camera metres) lies on the box."""
    return (x > -0.16 + shift) & (x < 0.09 + shift) & (y > -0.10) & (y < 0.11)


def rays(lens: Lens) -> tuple[np.ndarray, np.ndarray]:
    """x/z and y/z of every pixel centre of a lens."""
    v, u = np.mgrid[0:lens.height, 0:lens.width].astype(np.float64)
    return (u - lens.ppx) / lens.fx, (v - lens.ppy) / lens.fy


def colour_sees_box(u: np.ndarray, v: np.ndarray, shift: float) -> np.ndarray:
    """Whether the colour camera's ray through pixel (u, v) meets the box (it stands before the wall)."""
    dx, dy = (u - COLOUR_LENS.ppx) / COLOUR_LENS.fx, (v - COLOUR_LENS.ppy) / COLOUR_LENS.fy
    z = BOX_M + BASELINE[2]  # the box plane's depth in the colour camera's frame
    return box(dx * z - BASELINE[0], dy * z - BASELINE[1], shift)


def scene(shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colour RGB, depth in DEPTH_SCALE units, infrared) of the box shifted sideways by `shift` metres."""
    dx, dy = rays(DEPTH_LENS)
    on_box = box(dx * BOX_M, dy * BOX_M, shift)
    depth = np.where(on_box, BOX_M, WALL_M) / DEPTH_SCALE
    infrared = np.where(on_box, BOX_IR, WALL_IR).astype(np.uint8)
    v, u = np.mgrid[0:COLOUR_LENS.height, 0:COLOUR_LENS.width].astype(np.float64)
    colour = np.where(colour_sees_box(u, v, shift)[..., None], BOX_RGB, WALL_RGB).astype(np.uint8)
    return colour, np.rint(depth).astype(np.uint16), infrared


def truth(shift: float = 0.0) -> np.ndarray:
    """Per depth pixel: does the colour camera see the box where this pixel's 3D point projects? On
    the box, yes; beside its edge the depth camera sees the wall but the colour camera the box."""
    dx, dy = rays(DEPTH_LENS)
    z = np.where(box(dx * BOX_M, dy * BOX_M, shift), BOX_M, WALL_M)
    x, y, z = dx * z + BASELINE[0], dy * z + BASELINE[1], z + BASELINE[2]
    u, v = x / z * COLOUR_LENS.fx + COLOUR_LENS.ppx, y / z * COLOUR_LENS.fy + COLOUR_LENS.ppy
    return colour_sees_box(np.rint(u), np.rint(v), shift)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def record(path: Path, shifts: list[float], infrared: bool = False, depth: bool = True) -> Path:
    frames = [scene(s) for s in shifts]
    return write_rgbd_recording(path.with_suffix(recording_suffix()), [f[0] for f in frames],
                                [f[1] for f in frames] if depth else None,
                                [f[2] for f in frames] if infrared else None, colour_lens=COLOUR_LENS,
                                depth_lens=DEPTH_LENS, depth_to_colour=BASELINE, depth_scale=DEPTH_SCALE)


def box_mask(rgb_png: Path) -> np.ndarray:
    """The pixels of a written colour frame that show the box's colour."""
    image = cv2.cvtColor(cv2.imread(str(rgb_png), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB).astype(int)
    return np.abs(image - BOX_RGB).sum(axis=2) < 60


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("collect-recordings")
    shifts = [0.0, 0.0, 0.0, 0.05, 0.05, 0.1]
    return {"rgbd": record(root / "rgbd", shifts), "rgbdi": record(root / "rgbdi", shifts, infrared=True),
            "depth_only": write_recording(root / f"depth_only{recording_suffix()}", [scene()[1]] * 2),
            "colour_ir": record(root / "colour_ir", shifts[:2], infrared=True, depth=False),
            "shifts": shifts}


def collect(*argv: str) -> int:
    return main(["collect", *map(str, argv), "-q"])


def pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def test_ti_pairs_put_the_box_on_the_same_pixels(recordings, tmp_path, capsys):
    out = tmp_path / "ti"
    assert collect(recordings["rgbd"], "--out", out, "--as", "ti", "--class", "hallway") == 0
    names = pngs(out / "depth" / "hallway")
    assert names == pngs(out / "rgb" / "hallway") == [f"{i:06d}.png" for i in range(6)]
    for name, shift in zip(names, recordings["shifts"]):
        depth = cv2.imread(str(out / "depth" / "hallway" / name), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == (DEPTH_LENS.height, DEPTH_LENS.width)
        assert set(np.unique(depth)) == {800, 2000}  # millimetres from the 0.1 mm unit, never resampled
        colour_mask = box_mask(out / "rgb" / "hallway" / name)
        assert colour_mask.shape == depth.shape
        score = iou(colour_mask, truth(shift))
        print(f"depth IoU {score:.4f}", file=sys.stderr)
        assert score >= 0.95
        band = truth(shift) & (depth == 2000)
        assert band.sum() > 0 and colour_mask[band].mean() > 0.8  # the wall the colour camera cannot see
    assert "collected 6 pairs: 0 skipped, 0 dropped" in capsys.readouterr().err
    pairs = ti_pairs(out / "rgb", out / "depth")
    assert len(pairs) == 6 and pairs.source.class_names == ("hallway",)


def test_ti_pairs_with_infrared(recordings, tmp_path):
    out = tmp_path / "ti"
    assert collect(recordings["rgbdi"], "--out", out, "--as", "ti", "--class", "hallway", "--stream",
                   "infrared") == 0
    assert not (out / "depth").exists()
    for name, shift in zip(pngs(out / "ir" / "hallway"), recordings["shifts"]):
        infrared = cv2.imread(str(out / "ir" / "hallway" / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(infrared, scene(shift)[2])  # as the stream gave it
        score = iou(box_mask(out / "rgb" / "hallway" / name), truth(shift))
        print(f"infrared IoU {score:.4f}", file=sys.stderr)
        assert score >= 0.95
    assert len(ti_pairs(out / "rgb", out / "ir")) == 6
