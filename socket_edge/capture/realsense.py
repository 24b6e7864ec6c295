"""Colour frames resampled onto the depth (or infrared) camera's pixel grid, from a live RealSense
or a recording, by librealsense's align: every depth pixel is deprojected with its depth,
moved into the colour camera by the extrinsics and projected with the colour intrinsics. The depth
or infrared frame itself is never resampled. Infrared #1 shares the depth camera's grid on a
RealSense, so colour aligned to depth is aligned to it too; a recording of colour and infrared
without depth carries no geometry to align with and is refused."""

from __future__ import annotations

import queue
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from socket_edge.errors import DataError, UsageError, require

RECORDING_SUFFIXES = (".bag", ".db3")
STREAMS = ("depth", "infrared")
RECENT = 4  # frames of each partner stream kept for pairing (the playback runs at most a few frames apart)


@dataclass(frozen=True)
class Pair:
    """One registered pair: `colour` H×W×3 RGB uint8 on the target's grid; `target` H×W depth in
    millimetres (uint16, 0: no reading) or infrared as the stream gives it; the target's frame number
    and time (seconds)."""

    colour: np.ndarray
    target: np.ndarray
    number: int
    timestamp: float


def depth_to_millimetres(raw: np.ndarray, depth_scale: float) -> np.ndarray:
    """Z16 depth units → uint16 millimetres, saturating at 65535; 0 (no reading) stays 0, and a
    reading never rounds to 0 (at least 1 mm)."""
    mm = np.rint(raw.astype(np.float64) * (depth_scale * 1000.0))
    mm = np.clip(mm, 1, 65535)
    return np.where(raw == 0, 0, mm).astype(np.uint16)


def parse_source(source: str, stream: str | None = None) -> tuple[str, str, str]:
    """(kind, target, stream): ('live', SERIAL or '') for realsense://[SERIAL], ('recording', PATH) for a
    .bag/.db3 file. A `?stream=depth|infrared` on the source (as `run` takes it) agrees with `stream`
    (--stream) or stands for it; the default is depth."""
    text, _, query = source.partition("?")
    options = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
    if set(options) - {"stream"}:
        raise UsageError(f"source {source!r}: collect takes only ?stream=depth|infrared (it records at the "
                         f"camera's default resolution and rate); drop {', '.join(sorted(set(options) - {'stream'}))}")
    if options.get("stream", "depth") not in STREAMS:
        raise UsageError(f"source {source!r}: stream must be depth or infrared, got {options['stream']!r}")
    if stream and options.get("stream", stream) != stream:
        raise UsageError(f"source {source!r} asks for stream={options['stream']} but --stream is {stream}; "
                         "give one of them")
    stream = stream or options.get("stream", "depth")
    if text.startswith("realsense://"):
        return "live", text[len("realsense://"):].strip("/"), stream
    if Path(text).suffix.lower() in RECORDING_SUFFIXES:
        if not Path(text).is_file():
            raise DataError(f"recording {text} does not exist")
        return "recording", text, stream
    raise UsageError(f"source {source!r} is neither realsense://[SERIAL] nor a RealSense recording (.bag/.db3)")


def _stream_name(profile) -> str:
    name = str(profile.stream_type()).replace("stream.", "")
    return name if name != "infrared" else f"infrared#{profile.stream_index()}"


class PairedStream:
    """Registered (colour, depth|infrared) pairs from `source`, one per target frame, in order:
    open(), read() → Pair | None at the end of a recording, close(). `dropped`: target frames that
    never arrived (gaps in their frame numbers) or arrived without a colour frame of their time."""

    def __init__(self, source: str, stream: str | None = None, timeout_s: float = 5.0) -> None:
        if stream is not None and stream not in STREAMS:
            raise UsageError(f"--stream must be depth or infrared, got {stream!r}")
        self.source, self.timeout_s = source, timeout_s
        self.kind, self.target, self.stream = parse_source(source, stream)
        self.rs = self.pipeline = self.align = self.playback = self.composer = self.composed = None
        self.sensors: list = []
        self.arrived: queue.Queue = queue.Queue(maxsize=4)  # a recording's frames, one by one
        self.pending: list = []  # a recording's target frames waiting for their partners, in order
        self.recent: dict = {}  # a recording's newest colour (and depth) frames, RECENT of each
        self.composing: list = []  # the frames the composer joins into one frameset for align
        self.closing = False
        self.depth_scale = 0.001
        self.dropped = 0
        self.last_number: int | None = None  # the newest target frame seen, and whether it was paired
        self.last_matched = False

    def open(self) -> None:
        """Start the camera or the playback; one line for a source that cannot give the pairs."""
        rs = self.rs = require("pyrealsense2", "realsense", needed_by="socket-edge collect")
        self.align = rs.align(rs.stream.depth)
        if self.kind == "recording":
            self._open_recording(rs)
        else:
            self._open_live(rs)

    def _open_live(self, rs) -> None:
        config = rs.config()
        if self.target:
            config.enable_device(self.target)
        config.enable_stream(rs.stream.color, rs.format.rgb8)
        config.enable_stream(rs.stream.depth, rs.format.z16)
        if self.stream == "infrared":
            config.enable_stream(rs.stream.infrared, 1, rs.format.y8)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise DataError(f"cannot start RealSense {self.target or 'camera'} with colour, depth"
                            f"{' and infrared #1' if self.stream == 'infrared' else ''} ({exc}); check the USB "
                            "connection, the serial number and that the camera has these streams") from None
        self.pipeline = pipeline
        self.depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())

    def _open_recording(self, rs) -> None:
        """Play the file sensor by sensor, not in real time: each frame waits in `arrived` until read()
        takes it, and the playback waits with it, so no frame is lost (a pipeline drops the framesets
        it has no room for). read() joins the frames of one moment into a frameset for align."""
        try:
            device = rs.context().load_device(str(self.target))
        except RuntimeError as exc:
            raise DataError(f"{self.target} cannot be played as a RealSense recording ({exc})") from None
        self.playback = device.as_playback()
        self.playback.set_real_time(False)
        chosen: dict = {}  # sensor → the profiles it plays
        for sensor in device.query_sensors():
            for profile in sensor.get_stream_profiles():
                kind = profile.stream_type()
                if kind in (rs.stream.color, rs.stream.depth) or (kind == rs.stream.infrared and
                                                                   profile.stream_index() == 1):
                    chosen.setdefault(sensor, []).append(profile)
                if kind == rs.stream.depth:
                    self.depth_scale = float(sensor.as_depth_sensor().get_depth_scale())
        self._check_streams(rs, [p for profiles in chosen.values() for p in profiles])
        self.composed = rs.frame_queue(2, True)
        self.composer = rs.processing_block(
            lambda _, source: source.frame_ready(source.allocate_composite_frame(self.composing)))
        self.composer.start(self.composed)
        self.playback.pause()  # the playback starts with the first sensor: the others would miss frames
        for sensor, profiles in chosen.items():
            sensor.open(profiles)
            sensor.start(self._on_frame)
            self.sensors.append(sensor)
        self.playback.resume()

    def _on_frame(self, frame) -> None:
        """Playback callback: keep the frame for read(), waiting for room (the playback waits too)."""
        frame.keep()
        while not self.closing:
            try:
                self.arrived.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    def _check_streams(self, rs, streams) -> None:
        """One line for a source without colour, without the asked stream, or without depth."""
        names = ", ".join(_stream_name(p) for p in streams) or "none"
        kinds = {p.stream_type() for p in streams}
        if rs.stream.color not in kinds:
            raise DataError(f"{self.source} has no colour stream (it has {names}); collect pairs colour with "
                            "depth or infrared: record the colour stream too")
        if self.stream == "infrared" and rs.stream.infrared not in kinds:
            raise DataError(f"{self.source} has no infrared #1 stream (it has {names}); pick --stream depth, or "
                            "record infrared too")
        if rs.stream.depth not in kinds:
            what = "--stream depth needs it" if self.stream == "depth" else \
                "aligning colour to infrared needs the depth stream's geometry"
            raise DataError(f"{self.source} has no depth stream (it has {names}); {what}: record depth too")

    def read(self) -> Pair | None:
        """The next registered pair; None at the end of a recording."""
        frames = self._live_frameset() if self.playback is None else self._recorded_frameset()
        if frames is None:
            self._advance(None)
            return None
        self.last_matched = True
        return self._register(frames)

    def _target_type(self):
        return self.rs.stream.depth if self.stream == "depth" else self.rs.stream.infrared

    def _fresh(self, target) -> bool:
        """Whether `target` is a target frame not yet paired (counting the frames skipped before it)."""
        number = int(target.get_frame_number())
        if self.last_number is not None and (number < self.last_number or
                                             (number == self.last_number and self.last_matched)):
            return False
        if number != self.last_number:
            self._advance(number)
        return True

    def _live_frameset(self):
        """The camera's next frameset holding colour, depth and the target frame (its syncer matched them)."""
        while True:
            try:
                frames = self.pipeline.wait_for_frames(int(self.timeout_s * 1000))
            except RuntimeError as exc:
                raise DataError(f"RealSense {self.target or 'camera'} delivered no frame ({exc})") from None
            target = frames.first_or_default(self._target_type())
            if target and self._fresh(target) and frames.first_or_default(self.rs.stream.color) and \
                    frames.get_depth_frame():
                return frames

    def _recorded_frameset(self):
        """The recording's next target frame joined into one frameset with the colour (and depth) frames
        of its time; frame by frame, as the playback delivers them. The sensors play on their own
        threads, so the next target frame can arrive before the colour frame of this one: target frames
        wait in `pending` and each stream's recent frames in `recent`, and a target frame counts as
        dropped only once every partner stream has moved past its time without a match."""
        rs = self.rs
        partners = [k for k in (rs.stream.color, rs.stream.depth) if k != self._target_type()]
        while True:
            frames = self._pair_pending(partners)
            if frames is not None:
                return frames
            try:
                frame = self.arrived.get(timeout=0.1)
            except queue.Empty:
                if self.playback.current_status() == rs.playback_status.stopped and self.arrived.empty():
                    for target in self.pending:  # the recording ended before their partners came
                        self._advance(int(target.get_frame_number()))
                    self.pending.clear()
                    return None
                continue
            kind = frame.get_profile().stream_type()
            if kind == self._target_type():
                number = int(frame.get_frame_number())
                newest = self.pending[-1].get_frame_number() if self.pending else self.last_number
                if newest is None or number > newest:  # a playback may repeat a frame: keep each number once
                    self.pending.append(frame)
            if kind in partners:
                self.recent.setdefault(kind, deque(maxlen=RECENT)).append(frame)

    def _pair_pending(self, partners: list):
        """The frameset of the oldest waiting target frame once its partners have arrived; a target
        frame whose partner streams have all passed its time without one is counted as dropped."""
        while self.pending:
            target = self.pending[0]
            found = {k: next((f for f in self.recent.get(k, ()) if self._same_time(target, f)), None) for k in partners}
            if all(found.values()):
                self.pending.pop(0)
                self._advance(int(target.get_frame_number()))
                self.composing = [*found.values(), target]
                self.composer.invoke(target)
                return self.composed.wait_for_frame().as_frameset()
            passed = [k for k in partners if found[k] is None and self.recent.get(k) and
                      self.recent[k][-1].get_timestamp() > target.get_timestamp()]
            if not passed:
                return None  # a partner may still come
            self.pending.pop(0)  # no partner of its time will come: dropped
            self._advance(int(target.get_frame_number()))
        return None

    def _advance(self, number: int | None) -> None:
        """Count as dropped the last target frame if it found no colour, and the numbers skipped
        before `number` (None: the end)."""
        if self.last_number is not None and not self.last_matched:
            self.dropped += 1
        if self.last_number is not None and number is not None:
            self.dropped += max(0, number - self.last_number - 1)
        self.last_number, self.last_matched = number, False

    @staticmethod
    def _same_time(target, other) -> bool:
        """Whether two frames were taken together: timestamps within half the faster stream's period."""
        fps = max(target.get_profile().fps(), other.get_profile().fps(), 1)
        return abs(target.get_timestamp() - other.get_timestamp()) <= 500.0 / fps

    def _register(self, frames) -> Pair:
        """Colour resampled onto the depth grid; the target frame as it came (depth in millimetres)."""
        target = frames.first(self._target_type())
        aligned = self.align.process(frames).first(self.rs.stream.color)
        colour = np.asanyarray(aligned.get_data()).copy()
        if aligned.get_profile().format() == self.rs.format.bgr8:
            colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
        pixels = np.asanyarray(target.get_data())
        if self.stream == "depth":
            pixels = depth_to_millimetres(pixels, self.depth_scale)
        else:
            pixels = pixels.copy()
        if colour.shape[:2] != pixels.shape[:2]:
            raise DataError(f"{self.source}: infrared is {pixels.shape[1]}×{pixels.shape[0]} but depth is "
                            f"{colour.shape[1]}×{colour.shape[0]}; colour is aligned to the depth grid, so infrared "
                            "must be recorded at the depth resolution")
        return Pair(colour, pixels, int(target.get_frame_number()), target.get_timestamp() / 1000.0)

    def close(self) -> None:
        """Stop the camera or the playback (safe to call twice)."""
        if self.pipeline is not None:
            try:
                self.pipeline.stop()
            except RuntimeError:  # the camera is already gone
                pass
            self.pipeline = None
        self.closing = True  # unblocks a playback callback waiting for room
        for sensor in self.sensors:
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError:
                pass
        self.sensors = []
