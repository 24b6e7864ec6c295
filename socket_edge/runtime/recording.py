"""Write a real RealSense recording without a camera: a pyrealsense2 software device with a depth
(Z16, a known depth scale) and an infrared (Y8, index 1) stream, recorded by `rs.recorder`.
Used by the tests and the benchmark; playback is sources.RealSenseSource. `write_rgbd_recording`
adds a colour camera with its own intrinsics and a baseline to the depth camera (what `collect` aligns). Where pyrealsense2 cannot
load, `write_depth_video` writes the same depth frames as a lossless 16-bit FFV1 video (sources.OpenCVSource).

pyrealsense2 before 2.58 writes rosbag1 (`.bag`); 2.58 and newer write rosbag2 (`.db3`) and
refuse another suffix: `recording_suffix()` says which. rs.recorder compresses frames unless
told not to (`compress=False`); playing a compressed file back decompresses every frame, CPU work
that a live camera does not do, so the benchmark measures both kinds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from socket_edge.errors import DataError, UsageError, require
from socket_edge.runtime import quiet  # noqa: F401  (FFmpeg silent before the first video is opened)


def recording_suffix() -> str:
    """The file suffix the installed pyrealsense2 records to ('.bag' or '.db3')."""
    rs = require("pyrealsense2", "realsense")
    version = tuple(int(v) for v in str(getattr(rs, "__version__", "2.58")).split(".")[:2])
    return ".db3" if version >= (2, 58) else ".bag"


@dataclass(frozen=True)
class Lens:
    """A distortion-free pinhole camera: image size (pixels), focal lengths and principal point (pixels)."""

    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float


def pinhole(rs, lens: Lens):
    """The rs.intrinsics of a Lens."""
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height, intrinsics.ppx, intrinsics.ppy = lens.width, lens.height, lens.ppx, lens.ppy
    intrinsics.fx, intrinsics.fy = lens.fx, lens.fy
    intrinsics.model, intrinsics.coeffs = rs.distortion.none, [0.0] * 5
    return intrinsics


def write_recording(path: str | Path, depth: list[np.ndarray], infrared: list[np.ndarray] | None = None, *,
                    depth_scale: float = 0.001, fps: int = 30, compress: bool = True) -> Path:
    """Record H×W uint16 depth frames (and optional H×W uint8 infrared frames of the same size) with
    frame numbers 0, 1, … and timestamps at `fps`; `compress`: librealsense's frame compression.
    Returns the path written."""
    rs = require("pyrealsense2", "realsense")
    path = Path(path)
    if path.suffix != recording_suffix():
        raise UsageError(f"this pyrealsense2 records {recording_suffix()} files, not {path.name}")
    height, width = depth[0].shape
    device = rs.software_device()
    sensor = device.add_sensor("Stereo Module")
    intrinsics = pinhole(rs, Lens(width, height, float(width), float(width), width / 2, height / 2))

    def stream(kind, index, uid, bpp, fmt):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height = kind, index, uid, width, height
        vs.fps, vs.bpp, vs.fmt, vs.intrinsics = fps, bpp, fmt, intrinsics
        return sensor.add_video_stream(vs)

    profiles = [stream(rs.stream.depth, 0, 0, 2, rs.format.z16)]
    if infrared is not None:
        profiles.append(stream(rs.stream.infrared, 1, 1, 1, rs.format.y8))
    sensor.add_read_only_option(rs.option.depth_units, float(depth_scale))
    path.parent.mkdir(parents=True, exist_ok=True)
    recorder = rs.recorder(str(path), device, compress)
    sensor.open(profiles)
    sensor.start(rs.frame_queue(len(depth) * 2 + 2))
    for number, image in enumerate(depth):
        pairs = [(profiles[0], np.ascontiguousarray(image, np.uint16), 2)]
        if infrared is not None:
            pairs.append((profiles[1], np.ascontiguousarray(infrared[number], np.uint8), 1))
        for profile, pixels, bpp in pairs:
            frame = rs.software_video_frame()
            frame.pixels, frame.stride, frame.bpp = pixels, width * bpp, bpp
            frame.timestamp, frame.frame_number = number * 1000.0 / fps, number
            frame.domain, frame.profile = rs.timestamp_domain.hardware_clock, profile.as_video_stream_profile()
            sensor.on_video_frame(frame)
    sensor.stop()
    sensor.close()
    del recorder  # flushes and closes the file
    return path


def write_rgbd_recording(path: str | Path, colour: list[np.ndarray], depth: list[np.ndarray] | None,
                         infrared: list[np.ndarray] | None = None, *, colour_lens: Lens, depth_lens: Lens,
                         depth_to_colour: tuple[float, float, float] = (0.0, 0.0, 0.0), depth_scale: float = 0.001,
                         fps: int = 30) -> Path:
    """Record a colour camera (h×w×3 uint8 RGB frames, `colour_lens`) beside a stereo module (H×W
    uint16 depth and/or H×W uint8 infrared #1 frames, both through `depth_lens`); the colour camera
    sits at `depth_to_colour` (metres, no rotation) in the depth camera's frame. Frame i of every
    stream has frame number i and one timestamp. Returns the path written (uncompressed)."""
    rs = require("pyrealsense2", "realsense")
    path = Path(path)
    if path.suffix != recording_suffix():
        raise UsageError(f"this pyrealsense2 records {recording_suffix()} files, not {path.name}")
    device = rs.software_device()
    stereo, rgb = device.add_sensor("Stereo Module"), device.add_sensor("RGB Camera")

    def stream(sensor, kind, index, uid, lens, bpp, fmt):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height = kind, index, uid, lens.width, lens.height
        vs.fps, vs.bpp, vs.fmt, vs.intrinsics = fps, bpp, fmt, pinhole(rs, lens)
        return sensor.add_video_stream(vs)

    colour_profile = stream(rgb, rs.stream.color, 0, 0, colour_lens, 3, rs.format.rgb8)
    stereo_streams = []  # (profile, frames, bytes per pixel)
    if depth is not None:
        stereo_streams.append((stream(stereo, rs.stream.depth, 0, 1, depth_lens, 2, rs.format.z16), depth, 2))
        stereo.add_read_only_option(rs.option.depth_units, float(depth_scale))
    if infrared is not None:
        stereo_streams.append((stream(stereo, rs.stream.infrared, 1, 2, depth_lens, 1, rs.format.y8), infrared, 1))
    to_colour = rs.extrinsics()
    to_colour.rotation, to_colour.translation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], [float(t) for t in depth_to_colour]
    for profile, _, _ in stereo_streams:
        profile.register_extrinsics_to(colour_profile, to_colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    recorder = rs.recorder(str(path), device, False)
    sensors = [(rgb, [(colour_profile, colour, 3)]), (stereo, stereo_streams)]
    for sensor, streams in sensors:
        if streams:
            sensor.open([profile for profile, _, _ in streams])
            sensor.start(rs.frame_queue(len(colour) * 3 + 3))
    for number in range(len(colour)):
        for sensor, streams in sensors:
            for profile, frames, bpp in streams:
                pixels = np.ascontiguousarray(frames[number])
                frame = rs.software_video_frame()
                frame.pixels, frame.stride, frame.bpp = pixels, pixels.shape[1] * bpp, bpp
                frame.timestamp, frame.frame_number = number * 1000.0 / fps, number
                frame.domain, frame.profile = rs.timestamp_domain.hardware_clock, profile.as_video_stream_profile()
                sensor.on_video_frame(frame)
    for sensor, streams in sensors:
        if streams:
            sensor.stop()
            sensor.close()
    del recorder  # flushes and closes the file
    return path


def write_depth_video(path: str | Path, depth: list[np.ndarray], fps: int = 30) -> Path:
    """Write H×W uint16 depth frames as a lossless 16-bit grey FFV1 video (`.mkv`), which `run` plays
    back unchanged with `?depth_scale=…`. Returns the path written."""
    path = Path(path)
    height, width = depth[0].shape
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height),
                             [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0])
    if not writer.isOpened():
        raise DataError(f"cannot write the 16-bit FFV1 video {path}: this OpenCV has no FFmpeg writer for FFV1")
    for image in depth:
        writer.write(np.ascontiguousarray(image, np.uint16))
    writer.release()
    return path
