"""Built-in synthetic data: procedural indoor scenes ray-cast in numpy, each seen as
three pixel-registered images (RGB, 16-bit depth in millimetres, 8-bit active IR).

Scene classes are defined by GEOMETRY (the layout of boxes, spheres and cylinders in a
room), so depth can tell them apart, while everything depth does not see is random per
sample: albedo, texture, lighting, colour cast and exposure. IR uses its own material
reflectance. Sensor domains mimic the cameras of SUN RGB-D: field of view, mounting,
depth noise (sigma grows with z^2), disparity quantisation, holes and range differ.

World frame: metres, x right, y up, z away from the camera; the room spans
x in [-W/2, W/2], y in [0, H], z in [0, D] and the camera stands near z = 0.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from socket_edge import atomic, jsontext
from socket_edge.data.images import write_image
from socket_edge.errors import DataError
from socket_edge.progress import bar

TASK_CLASSES: tuple[str, ...] = ("bedroom", "office", "kitchen", "bathroom", "living_room", "classroom")
TI_CLASSES: tuple[str, ...] = ("corridor", "library", "staircase", "storage")
ALL_CLASSES: tuple[str, ...] = TASK_CLASSES + TI_CLASSES
MODALITIES: tuple[str, ...] = ("rgb", "depth", "ir")
MIN_SIZE, MAX_SIZE = 32, 512
FORMAT_VERSION = 1

_EPS = 1e-4  # metres: ignore hits closer than this along a ray
_BOX_CHUNK = 1 << 20  # rays x boxes handled at once, to bound memory at large sizes


@dataclass(frozen=True)
class SensorDomain:
    """One simulated depth camera: optics, mounting and depth/IR error model."""

    name: str
    description: str
    fov_deg: float  # horizontal = vertical field of view (images are square)
    height_m: tuple[float, float]  # camera height above the floor, sampled uniformly
    pitch_deg: tuple[float, float]  # downward tilt, sampled uniformly
    noise: float  # depth sigma in metres at 1 m; sigma = noise * z^2
    disparity_step: float  # inverse-depth quantisation step (1/m); 0 for time-of-flight
    min_range_m: float  # nearer readings are holes
    max_range_m: float  # farther readings are holes
    edge_hole_prob: float  # chance that a pixel on the far side of a depth edge reads 0
    edge_width: float  # width of that band in pixels at 64 px (scales with size)
    dropout_patches: float  # mean number of random hole blobs per frame
    min_return: float  # IR return (reflectance * cos / r^2) below which depth fails
    ir_gain: float  # IR return mapped to full scale (before the sqrt response)
    ir_noise: float  # IR read-noise sigma in grey levels


DOMAINS: dict[str, SensorDomain] = {
    d.name: d
    for d in (
        SensorDomain("kv1", "Kinect v1 (structured light)", 55.0, (1.0, 1.4), (8.0, 18.0),
                     noise=0.0028, disparity_step=0.0025, min_range_m=0.5, max_range_m=6.0,
                     edge_hole_prob=0.8, edge_width=1.5, dropout_patches=1.5, min_return=0.004,
                     ir_gain=3.0, ir_noise=4.0),
        SensorDomain("kv2", "Kinect v2 (time of flight)", 68.0, (1.2, 1.6), (12.0, 22.0),
                     noise=0.0012, disparity_step=0.0, min_range_m=0.5, max_range_m=8.0,
                     edge_hole_prob=0.35, edge_width=1.0, dropout_patches=0.5, min_return=0.002,
                     ir_gain=4.0, ir_noise=2.0),
        SensorDomain("rs", "RealSense (active stereo)", 62.0, (0.8, 1.2), (4.0, 12.0),
                     noise=0.006, disparity_step=0.004, min_range_m=0.3, max_range_m=4.5,
                     edge_hole_prob=0.7, edge_width=2.0, dropout_patches=3.0, min_return=0.008,
                     ir_gain=2.5, ir_noise=6.0),
        SensorDomain("xtion", "Asus Xtion (structured light)", 50.0, (1.3, 1.7), (10.0, 20.0),
                     noise=0.0025, disparity_step=0.0025, min_range_m=0.8, max_range_m=5.0,
                     edge_hole_prob=0.75, edge_width=1.5, dropout_patches=1.5, min_return=0.005,
                     ir_gain=3.0, ir_noise=4.0),
    )
}


# ---------------------------------------------------------------------------------------------
# scene description


class _Material(NamedTuple):
    """Surface appearance. RGB: albedo times a texture; IR: its own reflectance."""

    albedo: np.ndarray  # linear RGB in [0, 1]
    ir: float  # IR reflectance, independent of the albedo
    kind: int  # texture: 0 plain, 1 stripes, 2 checker, 3 noise
    scale: float  # texture period in metres
    contrast: float
    angle: float  # stripe direction (radians)
    offset: np.ndarray  # texture phase (2,)


@dataclass
class _Scene:
    """Primitives and materials of one room. Each primitive has a material (colour, texture,
    IR reflectance; parts of one piece of furniture share one) and its own object id."""

    rng: np.random.Generator
    width: float
    depth: float
    height: float
    boxes: list[list[float]] = field(default_factory=list)  # x0, y0, z0, x1, y1, z1
    box_mats: list[int] = field(default_factory=list)
    spheres: list[list[float]] = field(default_factory=list)  # cx, cy, cz, r
    sphere_mats: list[int] = field(default_factory=list)
    cylinders: list[list[float]] = field(default_factory=list)  # cx, cy, cz, r, half length, axis
    cylinder_mats: list[int] = field(default_factory=list)
    materials: list[_Material] = field(default_factory=list)
    noise_table: np.ndarray = field(init=False)  # lattice for the 'noise' texture
    wall: int = field(init=False)  # materials of the room's surfaces
    floor: int = field(init=False)
    ceiling: int = field(init=False)

    def __post_init__(self) -> None:
        self.noise_table = self.rng.random((16, 16))
        self.wall = self.material()
        self.floor = self.material(texture_p=0.8)
        self.ceiling = self.material(texture_p=0.1, bright=True)

    def material(self, texture_p: float = 0.5, bright: bool = False) -> int:
        """A new random material; returns its index."""
        rng = self.rng
        hsv = np.array([[[rng.uniform(0, 360), rng.uniform(0.0, 0.7),
                          rng.uniform(0.7, 0.95) if bright else rng.uniform(0.25, 0.95)]]], np.float32)
        albedo = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)
        kind = int(rng.integers(1, 4)) if rng.random() < texture_p else 0
        self.materials.append(_Material(albedo, rng.uniform(0.2, 0.95), kind, rng.uniform(0.05, 0.4),
                                        rng.uniform(0.1, 0.6), rng.uniform(0, math.pi), rng.uniform(0, 16, 2)))
        return len(self.materials) - 1

    def box(self, x: float, z: float, w: float, d: float, h: float, mat: int, y: float = 0.0) -> None:
        """Axis-aligned box with footprint centre (x, z), size w (x) by d (z), from y to y + h."""
        self.boxes.append([x - w / 2, y, z - d / 2, x + w / 2, y + h, z + d / 2])
        self.box_mats.append(mat)

    def sphere(self, x: float, y: float, z: float, r: float, mat: int) -> None:
        """Sphere of radius r centred at (x, y, z)."""
        self.spheres.append([x, y, z, r])
        self.sphere_mats.append(mat)

    def cylinder(self, x: float, y: float, z: float, r: float, length: float, axis: int, mat: int) -> None:
        """Capped cylinder centred at (x, y, z) along world axis 0 (x), 1 (y) or 2 (z)."""
        self.cylinders.append([x, y, z, r, length / 2, axis])
        self.cylinder_mats.append(mat)

    def mirror(self) -> None:
        """Swap left and right (x -> -x), so layouts written for one side appear on both."""
        for b in self.boxes:
            b[0], b[3] = -b[3], -b[0]
        for p in self.spheres + self.cylinders:
            p[0] = -p[0]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _table(s: _Scene, x: float, z: float, w: float, d: float, top: float, mat: int, leg: float = 0.05) -> None:
    """Table: a top slab at height `top` on four legs."""
    thick = 0.04
    s.box(x, z, w, d, thick, mat, y=top - thick)
    for dx in (-1, 1):
        for dz in (-1, 1):
            s.box(x + dx * (w - leg) / 2, z + dz * (d - leg) / 2, leg, leg, top - thick, mat)


def _chair(s: _Scene, x: float, z: float, mat: int, swivel: bool) -> None:
    """Chair facing +z (backrest nearer the camera): seat, backrest, a post or one block leg."""
    seat, size = _u(s.rng, 0.42, 0.5), _u(s.rng, 0.4, 0.5)
    s.box(x, z, size, size, 0.06, mat, y=seat - 0.06)
    s.box(x, z - size / 2 + 0.03, size, 0.05, _u(s.rng, 0.35, 0.55), mat, y=seat)
    if swivel:
        s.cylinder(x, (seat - 0.06) / 2, z, 0.03, seat - 0.06, 1, mat)
        s.cylinder(x, 0.03, z, 0.28, 0.06, 1, mat)
    else:
        s.box(x, z, size * 0.8, size * 0.8, seat - 0.06, mat)


# ---------------------------------------------------------------------------------------------
# class layouts: each builds one room, written for one side (the scene is mirrored at random)


def _bedroom(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 3.2, 4.5), _u(rng, 3.8, 5.2), _u(rng, 2.4, 2.8))
    bw, bl, bh = _u(rng, 1.2, 1.8), _u(rng, 1.9, 2.1), _u(rng, 0.4, 0.6)
    frame, linen, stand = s.material(), s.material(), s.material()
    if rng.random() < 0.5:  # head against the far wall
        x, z = _u(rng, -0.3, 0.3) * (s.width - bw), s.depth - bl / 2
        s.box(x, z, bw, bl, bh * 0.45, frame)
        s.box(x, z, bw - 0.04, bl - 0.04, bh * 0.55, linen, y=bh * 0.45)
        s.box(x, s.depth - 0.04, bw + 0.1, 0.08, _u(rng, 0.9, 1.2), frame)
        for side in (-1, 1):
            s.box(x + side * bw / 4, s.depth - 0.3, bw * 0.4, 0.3, 0.12, linen, y=bh)
            if rng.random() < 0.7:
                s.box(x + side * (bw / 2 + 0.3), s.depth - 0.22, 0.45, 0.4, 0.5, stand)
    else:  # head against the right wall, bed across the room
        x, z = s.width / 2 - bl / 2, _u(rng, 2.2, s.depth - bw / 2 - 0.3)
        s.box(x, z, bl, bw, bh * 0.45, frame)
        s.box(x, z, bl - 0.04, bw - 0.04, bh * 0.55, linen, y=bh * 0.45)
        s.box(s.width / 2 - 0.04, z, 0.08, bw + 0.1, _u(rng, 0.9, 1.2), frame)
        s.box(s.width / 2 - 0.3, z, 0.3, bw * 0.8, 0.12, linen, y=bh)
        if rng.random() < 0.7:
            s.box(s.width / 2 - 0.22, z - bw / 2 - 0.3, 0.4, 0.45, 0.5, stand)
    if rng.random() < 0.6:  # wardrobe against the left wall
        s.box(-s.width / 2 + 0.3, _u(rng, 1.8, s.depth - 1.0), 0.6, _u(rng, 1.0, 1.8), _u(rng, 1.9, 2.2),
              s.material())
    return s


def _office(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 3.0, 4.2), _u(rng, 3.5, 5.0), _u(rng, 2.5, 3.0))
    desk, chair, screen = s.material(), s.material(), s.material(texture_p=0.0)
    w, d, top = _u(rng, 1.2, 1.8), _u(rng, 0.6, 0.8), _u(rng, 0.71, 0.76)
    x, z = _u(rng, -0.3, 0.3) * (s.width - w), s.depth - d / 2 - _u(rng, 0.0, 0.1)
    _table(s, x, z, w, d, top, desk)
    for _ in range(int(rng.integers(1, 3))):
        mx = x + _u(rng, -0.3, 0.3) * w
        s.box(mx, z + d / 4, 0.2, 0.15, 0.1, screen, y=top)
        s.box(mx, z + d / 4, _u(rng, 0.45, 0.6), 0.03, _u(rng, 0.28, 0.38), screen, y=top + 0.1)
    _chair(s, x + _u(rng, -0.2, 0.2), z - d / 2 - _u(rng, 0.2, 0.45), chair, swivel=True)
    if rng.random() < 0.4:  # a second desk along the right wall
        w2 = _u(rng, 1.2, 1.6)
        _table(s, s.width / 2 - d / 2, _u(rng, 1.6, s.depth - d - w2 / 2), d, w2, top, desk)
    if rng.random() < 0.5:  # filing cabinet or bookshelf on the left
        tall = rng.random() < 0.5
        s.box(-s.width / 2 + 0.22, _u(rng, 1.5, s.depth - 0.8), 0.42, _u(rng, 0.5, 0.9),
              _u(rng, 1.6, 2.0) if tall else _u(rng, 0.6, 1.0), s.material())
    return s


def _kitchen(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 2.8, 4.0), _u(rng, 3.5, 5.0), _u(rng, 2.4, 2.7))
    body, worktop, upper = s.material(), s.material(), s.material()
    cd, ch = _u(rng, 0.58, 0.65), _u(rng, 0.86, 0.92)
    fridge = rng.random() < 0.7
    z0, z1 = _u(rng, 1.0, 1.6), s.depth - (0.72 if fridge else 0.0)
    xr = s.width / 2 - cd / 2
    s.box(xr, (z0 + z1) / 2, cd, z1 - z0, ch - 0.04, body)
    s.box(xr - 0.02, (z0 + z1) / 2, cd + 0.04, z1 - z0, 0.04, worktop, y=ch - 0.04)
    cab_y = _u(rng, 1.4, 1.5)
    s.box(s.width / 2 - 0.175, (z0 + z1) / 2, 0.35, z1 - z0, _u(rng, 0.6, 0.8), upper, y=cab_y)
    if fridge:
        s.box(s.width / 2 - 0.36, s.depth - 0.36, 0.7, 0.7, _u(rng, 1.7, 1.95), s.material(texture_p=0.0))
    if rng.random() < 0.5:  # the run turns along the far wall
        x0 = -s.width / 2 + _u(rng, 0.3, 1.0)
        x1 = s.width / 2 - (0.72 if fridge else cd)
        s.box((x0 + x1) / 2, s.depth - cd / 2, x1 - x0, cd, ch - 0.04, body)
        s.box((x0 + x1) / 2, s.depth - cd / 2 - 0.02, x1 - x0, cd + 0.04, 0.04, worktop, y=ch - 0.04)
        s.box((x0 + x1) / 2, s.depth - 0.175, x1 - x0, 0.35, _u(rng, 0.6, 0.8), upper, y=cab_y)
    elif s.width > 3.3 and rng.random() < 0.6:  # island
        s.box(_u(rng, -0.6, -0.2), _u(rng, 2.2, s.depth - 1.2), _u(rng, 0.7, 0.9), _u(rng, 1.2, 1.8), ch,
              s.material())
    return s


def _bathroom(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 1.9, 2.6), _u(rng, 2.4, 3.2), _u(rng, 2.3, 2.6))
    ceramic = s.material(texture_p=0.0, bright=True)
    r, length = _u(rng, 0.36, 0.45), _u(rng, 1.4, 1.7)
    s.cylinder(s.width / 2 - r - 0.02, _u(rng, 0.1, 0.18), s.depth - length / 2, r, length, 2, ceramic)
    xt = _u(rng, -0.3, 0.0) * s.width  # toilet against the far wall
    s.cylinder(xt, 0.2, s.depth - 0.45, 0.19, 0.4, 1, ceramic)
    s.box(xt, s.depth - 0.1, 0.42, 0.2, 0.4, ceramic, y=0.4)
    zs = _u(rng, 1.1, s.depth - 0.9)  # sink on the left wall
    s.cylinder(-s.width / 2 + 0.25, 0.4, zs, 0.07, 0.8, 1, ceramic)
    s.box(-s.width / 2 + 0.22, zs, 0.44, _u(rng, 0.5, 0.6), 0.15, ceramic, y=0.78)
    s.box(-s.width / 2 + 0.01, zs, 0.02, _u(rng, 0.5, 0.8), _u(rng, 0.6, 0.9), s.material(), y=1.2)
    return s


def _sofa(s: _Scene, x0: float, x1: float, z0: float, z1: float, back: str, mat: int) -> None:
    """Sofa segment on the footprint [x0, x1] x [z0, z1] with its backrest on side
    'far' (+z) or 'right' (+x)."""
    seat = _u(s.rng, 0.38, 0.46)
    s.box((x0 + x1) / 2, (z0 + z1) / 2, x1 - x0, z1 - z0, seat, mat)
    if back == "far":
        s.box((x0 + x1) / 2, z1 - 0.1, x1 - x0, 0.2, _u(s.rng, 0.75, 0.9), mat)
    else:
        s.box(x1 - 0.1, (z0 + z1) / 2, 0.2, z1 - z0, _u(s.rng, 0.75, 0.9), mat)


def _living_room(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 4.0, 5.5), _u(rng, 4.5, 6.0), _u(rng, 2.5, 3.0))
    fabric, wood = s.material(), s.material()
    sd = _u(rng, 0.8, 0.95)
    xa1 = s.width / 2 - _u(rng, 0.1, 0.6)
    xa0 = xa1 - _u(rng, 1.8, 2.6)
    _sofa(s, xa0, xa1, s.depth - sd, s.depth, "far", fabric)
    _sofa(s, xa1 - sd, xa1, s.depth - sd - _u(rng, 1.2, 1.8), s.depth - sd, "right", fabric)
    s.box(xa0 - 0.1, s.depth - sd / 2, 0.2, sd, _u(rng, 0.55, 0.65), fabric)  # armrest
    tw, td, th = _u(rng, 0.9, 1.3), _u(rng, 0.5, 0.7), _u(rng, 0.35, 0.45)
    tx, tz = (xa0 + xa1 - sd) / 2, s.depth - sd - 0.45 - td / 2
    if rng.random() < 0.5:
        _table(s, tx, tz, tw, td, th, wood)
    else:
        s.box(tx, tz, tw, td, th, wood)
    ls = _u(rng, 1.4, 1.9)  # TV unit on the left wall
    zt = s.depth - sd - _u(rng, 0.5, 1.0) - ls / 2
    s.box(-s.width / 2 + 0.23, zt, 0.45, ls, 0.5, wood)
    s.box(-s.width / 2 + 0.25, zt, 0.05, _u(rng, 0.9, 1.3), _u(rng, 0.55, 0.75), s.material(texture_p=0.0),
          y=_u(rng, 0.55, 0.7))
    if rng.random() < 0.5:  # round side table
        s.cylinder(xa0 - 0.45, 0.28, s.depth - 0.35, _u(rng, 0.2, 0.3), 0.56, 1, wood)
    return s


def _classroom(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 5.5, 7.5), _u(rng, 6.0, 8.5), _u(rng, 2.8, 3.3))
    desk, chair = s.material(), s.material()
    rows, cols = int(rng.integers(3, 5)), int(rng.integers(3, 5))
    w, d = _u(rng, 0.6, 0.75), _u(rng, 0.45, 0.55)
    pitch_x, pitch_z = (s.width - 1.2) / cols, _u(rng, 0.95, 1.2)
    z_first = _u(rng, 1.6, 2.2)
    for i in range(rows):
        for j in range(cols):
            if rng.random() < 0.1:
                continue
            x = -s.width / 2 + 0.6 + (j + 0.5) * pitch_x + _u(rng, -0.05, 0.05)
            z = z_first + i * pitch_z + _u(rng, -0.05, 0.05)
            s.box(x, z, w, d, 0.04, desk, y=0.68)
            for side in (-1, 1):
                s.box(x + side * (w / 2 - 0.02), z, 0.04, d, 0.68, desk)
            s.box(x, z - d / 2 - 0.2, 0.4, 0.4, 0.05, chair, y=0.4)
            s.box(x, z - d / 2 - 0.38, 0.4, 0.04, 0.4, chair, y=0.45)
            s.box(x, z - d / 2 - 0.2, 0.06, 0.06, 0.4, chair)
    s.box(_u(rng, -0.5, 0.5), s.depth - 0.015, _u(rng, 2.5, 4.0), 0.03, _u(rng, 1.0, 1.2), s.material(),
          y=0.9)
    s.box(_u(rng, -1.5, 1.5), s.depth - _u(rng, 1.0, 1.4), 1.4, 0.7, 0.75, s.material())
    return s


def _corridor(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 1.6, 2.4), _u(rng, 9.0, 15.0), _u(rng, 2.4, 3.0))
    frame, light = s.material(), s.material(texture_p=0.0, bright=True)
    for side in (-1, 1):
        z = _u(rng, 1.0, 2.5)
        while z < s.depth - 1.0:
            if rng.random() < 0.7:  # door frame: two jambs and a header
                x, dw = side * (s.width / 2 - 0.04), _u(rng, 0.85, 1.0)
                for dz in (-dw / 2, dw / 2):
                    s.box(x, z + dz, 0.08, 0.08, 2.05, frame)
                s.box(x, z, 0.08, dw + 0.08, 0.1, frame, y=2.05)
            elif rng.random() < 0.5:  # radiator or bench
                s.box(side * (s.width / 2 - 0.1), z, 0.2, _u(rng, 0.8, 1.4), _u(rng, 0.45, 0.7), s.material())
            z += _u(rng, 2.0, 3.5)
    z = _u(rng, 1.5, 3.0)
    while z < s.depth - 0.5:
        s.box(0.0, z, 0.3, 1.2, 0.05, light, y=s.height - 0.05)
        z += _u(rng, 2.0, 3.0)
    return s


def _shelf_unit(s: _Scene, x: float, z: float, w: float, d: float, h: float, frame: int, books: int) -> None:
    """Bookshelf: a recessed block of books inside boards every 30-40 cm."""
    s.box(x, z, w - 0.06, d - 0.06, h, books)
    step = _u(s.rng, 0.3, 0.4)
    y = 0.0
    while y < h:
        s.box(x, z, w, d, 0.03, frame, y=y)
        y += step
    s.box(x, z, w, d, 0.03, frame, y=h)


def _library(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 5.0, 7.0), _u(rng, 6.0, 9.0), _u(rng, 2.8, 3.5))
    frame, books = s.material(), s.material(texture_p=0.9)
    h = _u(rng, 1.9, 2.4)
    if rng.random() < 0.65:  # aisles: long units running away from the camera
        n, pitch, sd = int(rng.integers(3, 6)), _u(rng, 1.2, 1.7), _u(rng, 0.4, 0.6)
        z0, z1 = _u(rng, 1.5, 2.5), s.depth - _u(rng, 0.3, 1.2)
        x = -s.width / 2 + sd / 2 + _u(rng, 0.0, 0.4)
        for _ in range(n):
            if x > s.width / 2 - sd / 2:
                break
            _shelf_unit(s, x, (z0 + z1) / 2, sd, z1 - z0, h, frame, books)
            x += pitch
    else:  # rows across the room with a central gap
        z, gap = _u(rng, 2.0, 2.8), _u(rng, 1.0, 1.6)
        while z < s.depth - 0.5:
            for side in (-1, 1):
                half = s.width / 2 - gap / 2 - 0.3
                _shelf_unit(s, side * (gap / 2 + half / 2), z, half, 0.45, h, frame, books)
            z += _u(rng, 1.6, 2.2)
    return s


def _staircase(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 1.8, 3.0), _u(rng, 5.5, 7.5), _u(rng, 3.5, 4.5))
    step_mat, rail = s.material(), s.material()
    rise, tread, z0 = _u(rng, 0.16, 0.19), _u(rng, 0.25, 0.31), _u(rng, 1.4, 2.0)
    n = min(int(rng.integers(8, 15)), int((s.depth - 0.8 - z0) / tread))
    width = s.width if rng.random() < 0.5 else _u(rng, 1.0, s.width - 0.3)
    x = s.width / 2 - width / 2
    for k in range(1, n + 1):
        s.box(x, z0 + (k - 0.5) * tread, width, tread, k * rise, step_mat)
    z_land = z0 + n * tread
    s.box(x, (z_land + s.depth) / 2, width, s.depth - z_land, n * rise, step_mat)
    if width < s.width and rng.random() < 0.7:  # balusters and a stepped handrail on the open side
        xb = x - width / 2 + 0.05
        for k in range(1, n + 1, 2):
            s.cylinder(xb, k * rise + 0.45, z0 + (k - 0.5) * tread, 0.02, 0.9, 1, rail)
        for k in range(1, n + 1):
            s.box(xb, z0 + (k - 0.5) * tread, 0.06, tread, 0.05, rail, y=k * rise + 0.9)
    return s


def _storage(rng: np.random.Generator) -> _Scene:
    s = _Scene(rng, _u(rng, 3.0, 5.0), _u(rng, 4.0, 6.5), _u(rng, 2.5, 3.5))
    cartons = [s.material() for _ in range(3)]
    for _ in range(int(rng.integers(3, 6))):
        cx, cz = _u(rng, -0.4, 0.4) * s.width, _u(rng, 1.5, s.depth - 0.4)
        for c in range(int(rng.integers(1, 4))):
            size = _u(rng, 0.3, 0.6)
            x, y = cx + c * 0.62, 0.0
            for _ in range(int(rng.integers(1, 5))):
                side = size * _u(rng, 0.8, 1.0)
                s.box(x + _u(rng, -0.03, 0.03), cz + _u(rng, -0.03, 0.03), side, side, side * _u(rng, 0.7, 1.0),
                      cartons[int(rng.integers(3))], y=y)
                y += s.boxes[-1][4] - s.boxes[-1][1]
    if rng.random() < 0.5:  # pallet rack along the left wall, with a carton per shelf
        rack, depth, z0, z1 = s.material(), 0.8, _u(rng, 1.2, 2.0), s.depth - _u(rng, 0.2, 0.8)
        x = -s.width / 2 + depth / 2
        for z in (z0, z1):
            for dx in (-1, 1):
                s.box(x + dx * (depth / 2 - 0.04), z, 0.08, 0.08, 2.2, rack)
        for y in (0.1, 0.9, 1.7):
            s.box(x, (z0 + z1) / 2, depth, z1 - z0, 0.06, rack, y=y)
            s.box(x, _u(rng, z0 + 0.4, z1 - 0.4), 0.5, 0.5, 0.45, cartons[0], y=y + 0.06)
    if rng.random() < 0.4:  # barrels
        drum = s.material()
        for _ in range(int(rng.integers(1, 4))):
            s.cylinder(_u(rng, -0.4, 0.4) * s.width, 0.45, _u(rng, 1.5, s.depth - 0.4), 0.28, 0.9, 1, drum)
    return s


_LAYOUTS: dict[str, Callable[[np.random.Generator], _Scene]] = {
    "bedroom": _bedroom, "office": _office, "kitchen": _kitchen, "bathroom": _bathroom,
    "living_room": _living_room, "classroom": _classroom, "corridor": _corridor, "library": _library,
    "staircase": _staircase, "storage": _storage,
}


def _decorate(s: _Scene) -> None:
    """Class-agnostic clutter: picture frames, a rug, a ceiling light, a ball."""
    rng = s.rng
    for _ in range(int(rng.integers(0, 3))):
        w, h, y = _u(rng, 0.3, 0.9), _u(rng, 0.3, 0.7), _u(rng, 1.2, 1.8)
        if rng.random() < 0.5:
            s.box(-s.width / 2 + 0.01, _u(rng, 1.0, s.depth - 0.5), 0.02, w, h, s.material(texture_p=0.9), y=y)
        else:
            s.box(_u(rng, -0.4, 0.4) * s.width, s.depth - 0.01, w, 0.02, h, s.material(texture_p=0.9), y=y)
    if rng.random() < 0.4:
        s.box(_u(rng, -0.2, 0.2) * s.width, _u(rng, 1.5, 2.5), _u(rng, 1.0, 2.0), _u(rng, 0.8, 1.6), 0.01,
              s.material(texture_p=0.9))
    if rng.random() < 0.5:
        x, z, drop = _u(rng, -0.2, 0.2) * s.width, _u(rng, 1.5, s.depth - 0.8), _u(rng, 0.3, 0.6)
        s.cylinder(x, s.height - drop / 2, z, 0.01, drop, 1, s.ceiling)
        s.sphere(x, s.height - drop - 0.12, z, _u(rng, 0.1, 0.18), s.material(texture_p=0.0, bright=True))
    if rng.random() < 0.2:
        r = _u(rng, 0.08, 0.15)
        s.sphere(_u(rng, -0.4, 0.4) * s.width, r, _u(rng, 1.2, s.depth - 0.5), r, s.material())


# ---------------------------------------------------------------------------------------------
# ray casting


@dataclass
class _Hits:
    """Nearest surface per ray: distance t in ray units (camera z for our rays), normal,
    material index and object id."""

    t: np.ndarray
    normal: np.ndarray
    mat: np.ndarray
    obj: np.ndarray

    def merge(self, t: np.ndarray, normal: np.ndarray, mat: np.ndarray | int, obj: np.ndarray | int) -> None:
        """Keep the new surface where it is nearer."""
        closer = t < self.t
        self.t = np.where(closer, t, self.t)
        self.normal = np.where(closer[:, None], normal, self.normal)
        self.mat = np.where(closer, mat, self.mat)
        self.obj = np.where(closer, obj, self.obj)


def _axis_normals(axis: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Unit normals along `axis` (per ray), facing against the ray."""
    rows = np.arange(len(axis))
    normal = np.zeros_like(dirs)
    normal[rows, axis] = -np.sign(dirs[rows, axis])
    return normal


def _room(s: _Scene, origin: np.ndarray, dirs: np.ndarray, inv: np.ndarray) -> _Hits:
    """Where each ray leaves the room (the camera is inside it)."""
    lo = np.array([-s.width / 2, 0.0, 0.0])
    hi = np.array([s.width / 2, s.height, s.depth])
    tfar = np.maximum((lo - origin) * inv, (hi - origin) * inv)
    axis = tfar.argmin(1)
    t = tfar[np.arange(len(axis)), axis]
    mat = np.where(axis != 1, s.wall, np.where(dirs[:, 1] < 0, s.floor, s.ceiling))
    return _Hits(t, _axis_normals(axis, dirs), mat, np.zeros(len(t), np.int64))


def _boxes(boxes: np.ndarray, origin: np.ndarray, dirs: np.ndarray, inv: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slab test of every ray against every box: nearest t (inf if none), normal, box index."""
    n, m = len(dirs), len(boxes)
    t = np.full(n, np.inf)
    index = np.zeros(n, np.int64)
    axis = np.zeros(n, np.int64)
    chunk = max(1, _BOX_CHUNK // m)
    for a in range(0, n, chunk):
        rows = np.arange(min(n, a + chunk) - a)
        near, tn, tf = [], -np.inf, np.inf
        for k in range(3):  # per axis on (rays, boxes) arrays: faster than reducing a length-3 axis
            t1 = np.multiply.outer(inv[a:a + chunk, k], boxes[:, k] - origin[k])
            t2 = np.multiply.outer(inv[a:a + chunk, k], boxes[:, k + 3] - origin[k])
            near.append(np.minimum(t1, t2))
            tn, tf = np.maximum(tn, near[-1]), np.minimum(tf, np.maximum(t1, t2))
        tn = np.where((tf >= tn) & (tn > _EPS), tn, np.inf)
        j = tn.argmin(1)
        t[a:a + chunk], index[a:a + chunk] = tn[rows, j], j
        axis[a:a + chunk] = np.stack([nk[rows, j] for nk in near], 1).argmax(1)
    return t, _axis_normals(axis, dirs), index


def _sphere(p: Sequence[float], origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of each ray on one sphere (t = inf if none) and the normals there."""
    centre, r = np.asarray(p[:3]), p[3]
    oc = origin - centre
    a = (dirs * dirs).sum(1)
    b = 2.0 * dirs @ oc
    disc = b * b - 4 * a * (oc @ oc - r * r)
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
    t = np.where((disc >= 0) & (t > _EPS), t, np.inf)
    normal = (origin + np.where(np.isfinite(t), t, 0.0)[:, None] * dirs - centre) / r
    return t, normal


def _cylinder(p: Sequence[float], origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of each ray on one capped cylinder (t = inf if none) and the normals there."""
    centre, r, half, k = np.asarray(p[:3]), p[3], p[4], int(p[5])
    radial = [i for i in range(3) if i != k]
    oc = origin - centre
    dr, ocr = dirs[:, radial], oc[radial]
    a = (dr * dr).sum(1)
    b = 2.0 * dr @ ocr
    disc = b * b - 4 * a * (ocr @ ocr - r * r)
    t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * np.maximum(a, 1e-12))
    along = oc[k] + t_side * dirs[:, k]
    t_side = np.where((disc >= 0) & (t_side > _EPS) & (np.abs(along) <= half), t_side, np.inf)
    t, normal = t_side, np.zeros_like(dirs)
    hit = np.isfinite(t_side)
    normal[:, radial] = np.where(hit[:, None], ocr + t_side[:, None] * dr, 0.0) / r
    dk = np.where(np.abs(dirs[:, k]) < 1e-12, 1e-12, dirs[:, k])
    for sign in (-1.0, 1.0):
        t_cap = (sign * half - oc[k]) / dk
        q = ocr + t_cap[:, None] * dr
        ok = (t_cap > _EPS) & ((q * q).sum(1) <= r * r) & (t_cap < t)
        t = np.where(ok, t_cap, t)
        normal[ok] = 0.0
        normal[ok, k] = sign
    return t, normal


def _cast(s: _Scene, origin: np.ndarray, dirs: np.ndarray) -> _Hits:
    """Nearest surface along every ray: room, then boxes, spheres and cylinders."""
    inv = 1.0 / np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
    hits = _room(s, origin, dirs, inv)
    if s.boxes:
        t, normal, j = _boxes(np.array(s.boxes), origin, dirs, inv)
        hits.merge(t, normal, np.array(s.box_mats)[j], j + 1)
    obj = len(s.boxes) + 1
    for p, mat in zip(s.spheres, s.sphere_mats):
        hits.merge(*_sphere(p, origin, dirs), mat, obj)
        obj += 1
    for p, mat in zip(s.cylinders, s.cylinder_mats):
        hits.merge(*_cylinder(p, origin, dirs), mat, obj)
        obj += 1
    return hits


def _rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Camera-to-world rotation: turn left/right, tilt down (positive pitch), roll."""
    y, p, r = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    yaw = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    pitch = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    roll = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return yaw @ pitch @ roll


def _camera(s: _Scene, domain: SensorDomain, size: int, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Camera origin and one world-space ray per pixel (row-major), scaled so that t is
    the depth along the optical axis."""
    origin = np.array([_u(rng, -0.25, 0.25) * s.width,
                       min(_u(rng, *domain.height_m), s.height - 0.3),
                       _u(rng, 0.25, 0.6)])
    rot = _rotation(_u(rng, -12, 12), _u(rng, *domain.pitch_deg), _u(rng, -2, 2))
    f = (size / 2) / math.tan(math.radians(domain.fov_deg) / 2)
    c = (np.arange(size) + 0.5 - size / 2) / f
    u, v = np.meshgrid(c, -c)
    cam = np.stack([u.ravel(), v.ravel(), np.ones(size * size)], 1)
    return origin, cam @ rot.T


# ---------------------------------------------------------------------------------------------
# appearance and sensor models


def _value_noise(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smooth periodic noise in [0, 1] from a random lattice (bilinear, smoothstep)."""
    n = table.shape[0]
    ia, ib = np.floor(a), np.floor(b)
    fa, fb = a - ia, b - ib
    fa, fb = fa * fa * (3 - 2 * fa), fb * fb * (3 - 2 * fb)
    i0, j0 = ia.astype(np.int64) % n, ib.astype(np.int64) % n
    i1, j1 = (i0 + 1) % n, (j0 + 1) % n
    return ((table[i0, j0] * (1 - fa) + table[i1, j0] * fa) * (1 - fb)
            + (table[i0, j1] * (1 - fa) + table[i1, j1] * fa) * fb)


def _texture(point: np.ndarray, normal: np.ndarray, mat: np.ndarray, mats: dict, table: np.ndarray) -> np.ndarray:
    """Multiplicative texture per pixel: plain, stripes, checker or noise, in surface coordinates."""
    others = np.array([[1, 2], [0, 2], [0, 1]])[np.abs(normal).argmax(1)]
    uv = np.take_along_axis(point, others, 1) / mats["scale"][mat][:, None] + mats["offset"][mat]
    angle = mats["angle"][mat]
    stripes = np.floor(uv[:, 0] * np.cos(angle) + uv[:, 1] * np.sin(angle)) % 2
    checker = (np.floor(uv[:, 0]) + np.floor(uv[:, 1])) % 2
    noise = _value_noise(table, uv[:, 0] * 2, uv[:, 1] * 2)
    pattern = np.choose(mats["kind"][mat], [np.zeros_like(noise), stripes, checker, noise])
    return 1.0 - mats["contrast"][mat] * pattern


def _material_arrays(s: _Scene) -> dict[str, np.ndarray]:
    """The scene's materials as one array per field, indexed by material."""
    return {name: np.array(column) for name, column in zip(_Material._fields, zip(*s.materials))}


def _rgb(s: _Scene, hits: _Hits, point: np.ndarray, mats: dict, rng: np.random.Generator) -> np.ndarray:
    """Lambertian shading: ambient + a directional light + a ceiling point light, a colour
    cast, auto exposure, gamma and sensor noise. Returns float RGB in [0, 1]."""
    elevation, azimuth = _u(rng, 0.5, 1.4), _u(rng, 0, 2 * math.pi)
    sun = np.array([math.cos(elevation) * math.cos(azimuth), math.sin(elevation),
                    math.cos(elevation) * math.sin(azimuth)])
    lamp = np.array([_u(rng, -0.4, 0.4) * s.width, s.height - 0.05, _u(rng, 0.2, 0.9) * s.depth])
    to_lamp = lamp - point
    dist2 = np.maximum((to_lamp * to_lamp).sum(1), 0.25)
    lamp_cos = np.clip((hits.normal * to_lamp).sum(1) / np.sqrt(dist2), 0, None)
    light = (_u(rng, 0.1, 0.4) + _u(rng, 0.2, 0.8) * np.clip(hits.normal @ sun, 0, None)
             + _u(rng, 0.5, 3.0) * lamp_cos / dist2)
    tint = 1.0 + rng.uniform(-0.2, 0.2, 3)
    colour = mats["albedo"][hits.mat] * _texture(point, hits.normal, hits.mat, mats, s.noise_table)[:, None]
    colour = colour * light[:, None] * (tint / tint.mean())
    colour /= np.percentile(colour, 97) * _u(rng, 0.9, 1.3) + 1e-6
    colour = np.clip(colour, 0, 1) ** (1 / 2.2)
    return colour + rng.normal(0, _u(rng, 0.005, 0.02), colour.shape)


def _far_side_of_edges(z: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """Pixels behind a depth discontinuity between different objects (occlusion boundaries)."""
    mask = np.zeros(z.shape, bool)
    for axis in (0, 1):
        za, zb = np.moveaxis(z, axis, 0)[:-1], np.moveaxis(z, axis, 0)[1:]
        oa, ob = np.moveaxis(obj, axis, 0)[:-1], np.moveaxis(obj, axis, 0)[1:]
        jump = (oa != ob) & (np.abs(za - zb) > 0.03 * np.minimum(za, zb))
        m = np.moveaxis(mask, axis, 0)
        m[:-1] |= jump & (za > zb)
        m[1:] |= jump & (zb > za)
    return mask


def _depth(z: np.ndarray, obj: np.ndarray, ret: np.ndarray, domain: SensorDomain, rng: np.random.Generator
           ) -> np.ndarray:
    """Sensor depth in millimetres (uint16, 0 = no reading) from true z in metres."""
    size = z.shape[0]
    zn = z + rng.normal(0, 1, z.shape) * domain.noise * z * z
    if domain.disparity_step > 0:
        zn = 1.0 / (np.maximum(np.round(1.0 / zn / domain.disparity_step), 1) * domain.disparity_step)
    holes = (z < domain.min_range_m) | (z > domain.max_range_m)
    holes |= ret < domain.min_return * np.exp(rng.normal(0, 0.5, z.shape))
    holes |= rng.random(z.shape) < 0.003
    band = _far_side_of_edges(z, obj).astype(np.uint8)
    k = max(1, round(domain.edge_width * size / 64))
    band = cv2.dilate(band, np.ones((k, k), np.uint8)) if k > 1 else band
    holes |= (band > 0) & (rng.random(z.shape) < domain.edge_hole_prob)
    blobs = np.zeros(z.shape, np.uint8)
    for _ in range(rng.poisson(domain.dropout_patches)):
        centre = (int(rng.integers(size)), int(rng.integers(size)))
        axes = (max(1, int(size * _u(rng, 0.02, 0.09))), max(1, int(size * _u(rng, 0.02, 0.09))))
        cv2.ellipse(blobs, centre, axes, _u(rng, 0, 180), 0, 360, 1, -1)
    holes |= blobs > 0
    mm = np.clip(np.round(zn * 1000), 1, 65535).astype(np.uint16)
    mm[holes] = 0
    return mm


def _ir(ret: np.ndarray, domain: SensorDomain, rng: np.random.Generator) -> np.ndarray:
    """Active-illumination IR: return mapped through a sqrt response, plus ambient and noise."""
    signal = np.clip(ret * domain.ir_gain * _u(rng, 0.8, 1.25), 0, 1)
    level = 255 * np.sqrt(signal) + _u(rng, 0, 12)
    return np.clip(np.round(level + rng.normal(0, domain.ir_noise, ret.shape)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# public API


def _domain(domain: SensorDomain | str) -> SensorDomain:
    if isinstance(domain, SensorDomain):
        return domain
    if domain not in DOMAINS:
        raise DataError(f"unknown sensor domain {domain!r}; choose from: {', '.join(DOMAINS)}")
    return DOMAINS[domain]


def _check_size(size: int) -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DataError(f"image size must be {MIN_SIZE}..{MAX_SIZE} pixels, got {size}")


def _check_names(names: Sequence[str] | None, valid: Sequence[str], what: str) -> tuple[str, ...]:
    if names is None:
        return tuple(valid)
    names = tuple(dict.fromkeys([names] if isinstance(names, str) else names))
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        problem = f"unknown {what} {', '.join(unknown)}" if unknown else f"no {what} given"
        raise DataError(f"{problem}; choose from: {', '.join(valid)}")
    return names


def render_scene(scene_class: str, domain: SensorDomain | str, size: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one random scene of `scene_class` as seen by `domain`, size x size pixels.

    Returns (rgb uint8 HxWx3 in RGB order, depth uint16 HxW in millimetres with 0 = no
    reading, ir uint8 HxW), pixel-registered."""
    if scene_class not in _LAYOUTS:
        raise DataError(f"unknown scene class {scene_class!r}; choose from: {', '.join(ALL_CLASSES)}")
    domain = _domain(domain)
    _check_size(size)
    scene = _LAYOUTS[scene_class](rng)
    _decorate(scene)
    if rng.random() < 0.5:
        scene.mirror()
    origin, dirs = _camera(scene, domain, size, rng)
    hits = _cast(scene, origin, dirs)
    mats = _material_arrays(scene)
    point = origin + hits.t[:, None] * dirs
    r2 = hits.t * hits.t * (dirs * dirs).sum(1)
    cos = np.clip(-(hits.normal * dirs).sum(1) / np.sqrt((dirs * dirs).sum(1)), 0, 1)
    ret = (mats["ir"][hits.mat] * cos / r2).reshape(size, size)
    rgb = _rgb(scene, hits, point, mats, rng)
    rgb8 = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8).reshape(size, size, 3)
    depth = _depth(hits.t.reshape(size, size), hits.obj.reshape(size, size), ret, domain, rng)
    return rgb8, depth, _ir(ret, domain, rng)


def scene_dir(domain: str, modality: str, scene_class: str) -> Path:
    """Where `generate` puts a class: <domain>/<modality>/<class> for task classes and
    <domain>/ti/<modality>/<class> for task-irrelevant ones, so that each folder is ready to
    pass to train-source, adapt --target and adapt --ti-source/--ti-target as it is."""
    prefix = Path(domain, "ti") if scene_class in TI_CLASSES else Path(domain)
    return prefix / modality / scene_class


def scene_rng(seed: int, domain: str, scene_class: str, index: int) -> np.random.Generator:
    """The random stream `generate` renders scene_dir(domain, *, scene_class)/<index>.png from:
    independent of which other domains and classes are rendered, and in what order."""
    _check_names([domain], tuple(DOMAINS), "sensor domain(s)")
    _check_names([scene_class], ALL_CLASSES, "scene class(es)")
    return np.random.default_rng([seed, list(DOMAINS).index(domain), ALL_CLASSES.index(scene_class), index])


def _refuse_existing(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not an empty folder; choose another output folder or delete it")


def generate(out: str | Path, per_class: int = 50, size: int = 64, seed: int = 0,
             domains: Sequence[str] | None = None, classes: Sequence[str] | None = None,
             progress: bool = True) -> dict:
    """Write OUT/<domain>/<modality>/<class>/<id>.png (rgb, depth, ir) for the task classes,
    OUT/<domain>/ti/<modality>/<class>/<id>.png for the TI classes, and OUT/synth.json. The same relative path under rgb/depth/ir is one
    pair. Byte-identical for the same arguments; the folder appears atomically.

    Returns {"out", "counts" (pairs per domain), "pairs", "seconds"}."""
    start = time.perf_counter()
    out = Path(out)
    domains = _check_names(domains, tuple(DOMAINS), "sensor domain(s)")
    classes = _check_names(classes, ALL_CLASSES, "scene class(es)")
    _check_size(size)
    if per_class < 1:
        raise DataError(f"per_class must be at least 1, got {per_class}")
    if seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed}")
    _refuse_existing(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f"{out.name}.partial-{secrets.token_hex(4)}"
    partial.mkdir()
    jobs = [(d, c, i) for d in domains for c in classes for i in range(per_class)]
    try:
        for d, c, i in bar(jobs, desc="synth", enabled=progress):
            images = render_scene(c, d, size, scene_rng(seed, d, c, i))
            for modality, image in zip(MODALITIES, images):
                write_image(partial / scene_dir(d, modality, c) / f"{i:04d}.png", image, atomic=False)
        meta = {
            "generator": "socket_edge.data.synth", "format_version": FORMAT_VERSION,
            "layout": "<domain>/<rgb|depth|ir>/<task class>/<id>.png, <domain>/ti/<rgb|depth|ir>/<TI class>/<id>.png", "depth_unit": "mm (0 = no reading)",
            "seed": seed, "size": size, "per_class": per_class, "classes": list(classes),
            "task_classes": [c for c in classes if c in TASK_CLASSES],
            "ti_classes": [c for c in classes if c in TI_CLASSES],
            "domains": {d: asdict(DOMAINS[d]) for d in domains},
        }
        (partial / "synth.json").write_text(jsontext.dumps(meta, indent=2) + "\n")
        _refuse_existing(out)
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    counts = {d: per_class * len(classes) for d in domains}
    return {"out": str(out), "counts": counts, "pairs": sum(counts.values()),
            "seconds": time.perf_counter() - start}


def sample_sheet(out_png: str | Path, seed: int = 0, size: int = 96, domains: Sequence[str] | None = None,
                 dpi: int = 100) -> Path:
    """Save a grid of samples (rows: every class; columns: RGB, depth, IR per domain; the
    first two domains by default) as a PNG, written atomically. Returns its path."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image  # a dependency of matplotlib

    domains = tuple(DOMAINS)[:2] if domains is None else _check_names(domains, tuple(DOMAINS), "sensor domain(s)")
    _check_size(size)
    out_png = Path(out_png)
    cols = [(d, m) for d in domains for m in MODALITIES]
    fig = Figure(figsize=(1.1 * len(cols), 1.15 * len(ALL_CLASSES)), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(len(ALL_CLASSES), len(cols), squeeze=False)
    depth_cmap = colormaps["turbo"].with_extremes(bad="black")
    top = max(DOMAINS[d].max_range_m for d in domains)
    for r, scene_class in enumerate(ALL_CLASSES):
        images = {d: dict(zip(MODALITIES, render_scene(scene_class, d, size, scene_rng(seed, d, scene_class, 0))))
                  for d in domains}
        for c, (d, modality) in enumerate(cols):
            ax, image = axes[r, c], images[d][modality]
            if modality == "depth":
                ax.imshow(np.ma.masked_equal(image, 0) / 1000, cmap=depth_cmap, vmin=0, vmax=top,
                          interpolation="nearest")
            else:
                ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{d} {modality}", fontsize=7)
            if c == 0:
                kind = "task" if scene_class in TASK_CLASSES else "TI"
                ax.set_ylabel(f"{scene_class}\n({kind})", fontsize=7)
    fig.suptitle(f"socket-edge synthetic scenes (seed {seed}; depth 0-{top:g} m, holes black)", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2, rect=(0, 0, 1, 0.98))
    canvas.draw()
    sheet = Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3]).quantize(256)  # ~4x smaller file
    return atomic.write_with(out_png, lambda f: sheet.save(f, format="PNG", optimize=True))
