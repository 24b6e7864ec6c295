"""Frame sources behind one small interface: `open()`, `read() -> Frame | None` (None: the end of a
file or recording), `close()`. A live source that loses its device raises SourceLost from read();
capture.Capture reopens it. pyrealsense2 is imported only by the RealSense sources."""

from __future__ import annotations

import glob
import queue
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from socket_edge.data.images import is_image, read_image, sniff_modality
from socket_edge.errors import DataError, SocketEdgeError, require
from socket_edge.runtime.csi_rtsp import open_csi, open_rtsp, refuse_depth
from socket_edge.runtime.quiet import quiet_opencv
from socket_edge.runtime.uri import EIGHT_BIT_KINDS, SourceSpec


class SourceLost(SocketEdgeError):
    """A live source stopped delivering frames (unplugged camera, driver reset)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: H×W (depth/IR) or H×W×3 RGB-order image, its time (seconds), its number,
    metres per depth unit (None: the model's unit) and the modality it is; `header`: the ROS header
    (stamp in ns, frame_id) of a frame from a ROS 2 bag, None otherwise."""

    image: np.ndarray
    timestamp: float
    number: int
    unit: float | None
    modality: str
    header: tuple[int, str] | None = None


class Source:
    """Base class: a source of frames described by a SourceSpec."""

    modality: str | None = None  # known before the first frame (RealSense), else set by the first frame
    recorded: int | None = None  # frames the file holds, where it says so (a RealSense .db3 recording)

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    def open(self) -> None:
        """Acquire the device or file; raise a SocketEdgeError naming the fix."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file (safe to call twice)."""


class ImageSource(Source):
    """An image folder (sorted) or a glob; `loop` starts over at the end (an endless source)."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.files: list[Path] = []
        self.position = 0
        self.count = 0

    def open(self) -> None:
        target = Path(self.spec.target)
        if target.is_dir():
            files = sorted(p for p in target.iterdir() if is_image(p))
        else:
            files = sorted(Path(p) for p in glob.glob(self.spec.target) if is_image(Path(p)))
        if not files:
            raise DataError(f"source {self.spec.uri} holds no images (png, jpg, tif…); check the folder or glob")
        self.files = files
        self.modality = self.spec.modality or sniff_modality(files[0])

    def read(self) -> Frame | None:
        if self.position >= len(self.files):
            if not self.spec.loop:
                return None
            self.position = 0
        path = self.files[self.position]
        self.position += 1
        image = read_image(path, self.modality)
        frame = Frame(image, time.time(), self.count, self.spec.depth_scale, self.modality)
        self.count += 1
        return frame


class OpenCVSource(Source):
    """A video file, an OpenCV camera (index, /dev/videoN), a Jetson CSI camera or an RTSP stream
    (csi_rtsp). Depth video is decoded without colour conversion (16-bit FFV1 → uint16);
    single-channel modalities get grey frames. A live one (camera, csi, rtsp) that delivers no
    frame raises SourceLost, so that capture reopens it."""

    def __init__(self, spec: SourceSpec, model_modality: str = "rgb") -> None:
        super().__init__(spec)
        self.capture = None
        self.count = 0
        self.modality = spec.modality or model_modality
        if spec.kind in EIGHT_BIT_KINDS:
            refuse_depth(spec, self.modality)

    def open(self) -> None:
        if self.spec.kind == "csi":
            self.capture = open_csi(self.spec)
            return
        if self.spec.kind == "rtsp":
            self.capture = open_rtsp(self.spec)
            return
        target: str | int = self.spec.target
        if self.spec.kind == "camera" and str(target).isdigit():
            target = int(target)
        elif self.spec.kind == "video" and not Path(str(target)).is_file():
            raise DataError(f"video file {target} does not exist")
        params = [cv2.CAP_PROP_CONVERT_RGB, 0] if self.modality == "depth" else []
        backend = cv2.CAP_FFMPEG if self.spec.kind == "video" else cv2.CAP_ANY
        with quiet_opencv():  # our one line says what failed
            cap = cv2.VideoCapture(target, backend, params)
        if self.spec.kind == "camera":
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.spec.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.spec.height),
                                (cv2.CAP_PROP_FPS, self.spec.fps)):
                if value:
                    cap.set(prop, value)
        if not cap.isOpened():
            cap.release()
            what = "camera" if self.spec.kind == "camera" else "video file"
            raise DataError(f"cannot open {what} {self.spec.target}; check that it exists and that no other program "
                            "uses it")
        self.capture = cap

    def read(self) -> Frame | None:
        ok, image = self.capture.read() if self.capture is not None else (False, None)
        if not ok or image is None:
            if self.spec.live:
                what = {"csi": "CSI camera", "rtsp": "RTSP stream"}.get(self.spec.kind, "camera")
                raise SourceLost(f"{what} {self.spec.target} delivered no frame")
            return None
        if image.ndim == 3 and self.modality != "rgb":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        stamp = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if self.spec.kind == "video" else time.time()
        frame = Frame(image, stamp, self.count, self.spec.depth_scale, self.modality)
        self.count += 1
        return frame

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


class RealSenseSource(Source):
    """A RealSense stream, live (`realsense://`) or from a recording (`.bag`/`.db3`) played back
    without real-time pacing, so that no frame is dropped. Depth frames carry the sensor's depth scale."""

    def __init__(self, spec: SourceSpec, timeout_s: float = 5.0) -> None:
        super().__init__(spec)
        self.modality = "depth" if spec.stream == "depth" else "ir"
        self.timeout_s = timeout_s
        self.unit: float | None = None
        self.frames: queue.Queue = queue.Queue(maxsize=4)
        self.sensor = self.playback = self.pipeline = self.rs = None
        self.last_number = -1
        self.closing = False

    def _stream(self, rs):
        return rs.stream.depth if self.spec.stream == "depth" else rs.stream.infrared

    def open(self) -> None:
        rs = self.rs = require("pyrealsense2", "realsense")
        self.closing = False
        if self.spec.kind == "recording":
            self._open_recording(rs)
        else:
            self._open_live(rs)

    def _open_recording(self, rs) -> None:
        path = Path(self.spec.target)
        if not path.is_file():
            raise DataError(f"recording {path} does not exist")
        try:
            device = rs.context().load_device(str(path))
        except RuntimeError as exc:
            raise DataError(f"{path} cannot be played as a RealSense recording ({exc}); a ROS 2 bag of image "
                            "topics (ros2 bag record) is read with ros2bag://PATH?topic=NAME") from None
        self.playback = device.as_playback()
        self.recorded = recorded_frames(path, self.spec.stream, self.spec.index)
        self.playback.set_real_time(False)
        self.sensor, profile = self._find_profile(rs, device.query_sensors())
        self.sensor.open(profile)
        self.sensor.start(self._on_frame)

    def _find_profile(self, rs, sensors):
        wanted, seen = self._stream(rs), []
        for sensor in sensors:
            for profile in sensor.get_stream_profiles():
                seen.append(f"{profile.stream_type()}#{profile.stream_index()}".replace("stream.", ""))
                index_ok = self.spec.stream == "depth" or profile.stream_index() == self.spec.index
                if profile.stream_type() == wanted and index_ok:
                    if sensor.is_depth_sensor():
                        self.unit = float(sensor.as_depth_sensor().get_depth_scale())
                    return sensor, profile
        raise DataError(f"{self.spec.target} has no {self.spec.stream} stream (index {self.spec.index}); "
                        f"it has {', '.join(seen) or 'none'}: pick one with ?stream=depth|infrared&index=N")

    def _on_frame(self, rs_frame) -> None:
        """Playback callback: copy the pixels and wait for room (no drop: playback is not real time)."""
        item = (np.asanyarray(rs_frame.get_data()).copy(), rs_frame.get_timestamp() / 1000.0,
                int(rs_frame.get_frame_number()))
        while not self.closing:
            try:
                self.frames.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _open_live(self, rs) -> None:
        pipeline, config = rs.pipeline(), rs.config()
        if self.spec.target:
            config.enable_device(self.spec.target)
        fmt = rs.format.z16 if self.spec.stream == "depth" else rs.format.y8
        index = -1 if self.spec.stream == "depth" else self.spec.index
        config.enable_stream(self._stream(rs), index, self.spec.width, self.spec.height, fmt, self.spec.fps)
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise SourceLost(f"cannot start RealSense {self.spec.target or 'camera'} ({exc}); check the USB "
                             "connection, the serial number and that the stream settings exist") from None
        if self.spec.stream == "depth":
            self.unit = float(profile.get_device().first_depth_sensor().get_depth_scale())
        self.pipeline = pipeline

    def read(self) -> Frame | None:
        if self.pipeline is not None:
            try:
                frames = self.pipeline.wait_for_frames(int(self.timeout_s * 1000))
            except RuntimeError as exc:
                raise SourceLost(f"RealSense {self.spec.target or 'camera'} delivered no frame ({exc})") from None
            rs_frame = frames.first(self._stream(self.rs))
            return Frame(np.asanyarray(rs_frame.get_data()).copy(), rs_frame.get_timestamp() / 1000.0,
                         int(rs_frame.get_frame_number()), self.unit, self.modality)
        while True:
            try:
                image, stamp, number = self.frames.get(timeout=0.05)
            except queue.Empty:
                if self.playback.current_status() == self.rs.playback_status.stopped and self.frames.empty():
                    return None
                continue
            if number != self.last_number:  # a playback may repeat a frame: keep each number once
                self.last_number = number
                return Frame(image, stamp, number, self.unit, self.modality)

    def close(self) -> None:
        if self.pipeline is not None:
            try:
                self.pipeline.stop()
            except RuntimeError:  # the camera is already gone
                pass
            self.pipeline = None
        if self.sensor is not None:
            self.closing = True  # unblocks a playback callback waiting for room
            try:
                self.sensor.stop()
                self.sensor.close()
            except RuntimeError:
                pass
            self.sensor = None


class Ros2BagSource(Source):
    """The images of one topic of a ROS 2 bag (data.ros2bag), in recording order, each with its
    header; 16UC1 depth is in millimetres. `recorded`: the messages the bag says the topic holds."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.images = None
        self.count = 0
        self.unit: float | None = None

    def open(self) -> None:
        from socket_edge.data.ros2bag import DEPTH_UNIT, ImageTopic

        self.images = ImageTopic(self.spec.target, self.spec.topic)
        self.images.open()
        self.modality, self.recorded, self.count = self.images.modality, self.images.count, 0
        self.unit = DEPTH_UNIT if self.modality == "depth" else None

    def read(self) -> Frame | None:
        item = self.images.read() if self.images is not None else None
        if item is None:
            return None
        frame = Frame(item.image, item.stamp_ns / 1e9, self.count, self.unit, item.modality,
                      (item.stamp_ns, item.frame_id))
        self.count += 1
        return frame

    def close(self) -> None:
        if self.images is not None:
            self.images.close()
            self.images = None


def recorded_frames(path: Path, stream: str, index: int) -> int | None:
    """The frames of one stream that a rosbag2 (.db3, SQLite) recording holds, counted from its
    message index, which stays readable when frame data is damaged; None for a rosbag1 .bag."""
    topic = "%/Depth_0/image/data%" if stream == "depth" else f"%/Infrared_{index}/image/data%"
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            (count,) = db.execute("SELECT count(*) FROM messages JOIN topics ON topics.id = messages.topic_id "
                                  "WHERE topics.name LIKE ?", (topic,)).fetchone()
    except sqlite3.Error:
        return None
    return int(count) or None


def open_source(spec: SourceSpec, model_modality: str) -> Source:
    """The Source for a spec (not yet opened)."""
    if spec.kind in ("realsense", "recording"):
        return RealSenseSource(spec)
    if spec.kind == "images":
        return ImageSource(spec)
    if spec.kind == "ros2bag":
        return Ros2BagSource(spec)
    return OpenCVSource(spec, model_modality)
