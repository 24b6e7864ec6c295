"""What `run` does with each prediction: a JSON or text line, an overlay window, an annotated video."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from socket_edge import atomic, jsontext
from socket_edge.errors import DataError, MissingDependencyError, OutputError, UsageError
from socket_edge.runtime.quiet import quiet_opencv
from socket_edge.terminal import printable


def record(number: int, timestamp: float, class_names, probs: np.ndarray, latency_ms: float, top_k: int,
           stream: int = 0, header: tuple[int, str] | None = None) -> dict:
    """The per-frame result: {stream, frame, timestamp, label, score, top_k, latency_ms}; `stream` is
    the source's index in the order of the --source options (0 for a single source). A frame of a
    ROS 2 bag adds its `header` {stamp: {sec, nanosec}, frame_id}, as the source image had it."""
    order = np.argsort(-probs)[:top_k]
    rec = {
        "stream": int(stream),
        "frame": int(number),
        "timestamp": round(float(timestamp), 6),
        "label": class_names[int(order[0])],
        "score": round(float(probs[order[0]]), 6),
        "top_k": [{"label": class_names[int(i)], "score": round(float(probs[i]), 6)} for i in order],
        "latency_ms": round(latency_ms, 3),
    }
    if header is not None:
        sec, nanosec = divmod(int(header[0]), 1_000_000_000)
        rec["header"] = {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": header[1]}
    return rec


class LinePrinter:
    """One line per frame on `stream`: JSON (`--json`) or `frame label score`, after `stream N` when
    `tagged` (several sources)."""

    def __init__(self, as_json: bool, stream: TextIO | None = None, tagged: bool = False) -> None:
        self.as_json, self.stream, self.tagged = as_json, stream or sys.stdout, tagged

    def write(self, rec: dict, image: np.ndarray) -> None:
        if self.as_json:
            line = jsontext.dumps(rec)
        else:
            line = f"frame {rec['frame']:>6}  {printable(rec['label']):<16} {rec['score']:.3f}  {rec['latency_ms']:7.2f} ms"
            if self.tagged:
                line = f"stream {rec['stream']}  {line}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def visual(image: np.ndarray, modality: str) -> np.ndarray:
    """A BGR 8-bit picture of a frame, drawn as the demo's pictures are: depth on the turbo colour map
    from 0 (dark blue) to the frame's 99th percentile (red), holes (0) black; 16-bit IR grey on the same
    scale; RGB as it is."""
    if modality == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if image.dtype != np.uint8:
        sample = image[::4, ::4] if image.size > 65536 else image  # large: every 16th pixel, a tenth of the time
        valid = sample[sample > 0]
        hi = float(np.percentile(valid, 99)) if valid.size else 1.0
        scaled = np.clip(image.astype(np.float32) * (255.0 / max(hi, 1.0)), 0, 255).astype(np.uint8)
        if modality == "depth":
            coloured = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)
            coloured[image == 0] = 0
            return coloured
        image = scaled
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def annotate(image: np.ndarray, modality: str, rec: dict) -> np.ndarray:
    """The frame with its label and score written on it."""
    canvas = visual(image, modality)
    scale = max(canvas.shape[1] / 640.0, 0.35)
    text = f"{rec['label']} {rec['score']:.2f}"
    cv2.putText(canvas, text, (6, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0),
                max(int(4 * scale), 2), cv2.LINE_AA)
    cv2.putText(canvas, text, (6, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255),
                max(int(2 * scale), 1), cv2.LINE_AA)
    return canvas


VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}  # containers --save writes


def check_video_name(path: Path) -> None:
    """Refuse a --save name whose suffix is no video container OpenCV writes here (before anything is written)."""
    if path.suffix.lower() not in VIDEO_FOURCC:
        raise UsageError(f"--save {path}: {path.suffix or 'a name without a suffix'} is not a video format socket-edge "
                         f"writes; name the file {path.stem}.mp4 or {path.stem}.avi "
                         f"(or {', '.join(s for s in VIDEO_FOURCC if s not in ('.mp4', '.avi'))})")


class VideoSaver:
    """Annotated frames into a video, written under a temporary name and renamed into place at close
    once every frame reads back from it: a writer that failed (a full disk: OpenCV's write reports
    nothing) leaves no file under the given name."""

    def __init__(self, path: str | Path, modality: str, fps: float = 30.0) -> None:
        self.path, self.modality, self.fps = Path(path), modality, fps
        check_video_name(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale(self.path)
        self.tmp = atomic.temporary_path(self.path, self.path.suffix)  # OpenCV picks the container by suffix
        self.writer = None
        self.frames = 0

    def write(self, rec: dict, image: np.ndarray) -> None:
        canvas = annotate(image, self.modality, rec)
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (canvas.shape[1], canvas.shape[0]))
            if not self.writer.isOpened():
                self.tmp.unlink(missing_ok=True)
                raise DataError(f"cannot write video {self.path}; use a .mp4 or .avi name in a writable folder")
        with quiet_opencv():  # a failed write is our one line below, not a warning per frame
            self.writer.write(canvas)
        self.frames += 1
        full = atomic.no_room(self.tmp)
        if full is not None:  # stop at the first write that cannot be stored
            self.writer.release()
            self.writer = None
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write video {self.path} (frame {self.frames}): {full}; nothing was saved "
                              f"under that name: free space in {self.path.parent} or --save elsewhere")

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        try:
            readable = readable_frames(self.tmp)
            if readable != self.frames:
                free = shutil.disk_usage(self.path.parent).free / 1e6
                raise OutputError(f"cannot write video {self.path}: {readable} of {self.frames} frames can be read "
                                  f"back ({free:.1f} MB free in {self.path.parent}: is the disk full?); nothing was "
                                  "saved under that name")
            os.replace(self.tmp, self.path)
        except OSError as exc:
            raise atomic.write_error(self.path, exc) from None
        finally:
            self.tmp.unlink(missing_ok=True)


def close_all(outputs) -> None:
    """Close every output, even when one close() raises (each removes its own temporary file),
    then raise the first error."""
    first: Exception | None = None
    for out in outputs:
        try:
            out.close()
        except Exception as exc:  # the other outputs are closed all the same; the first error is raised below
            first = first or exc
    if first is not None:
        raise first


def per_stream_path(path: Path, index: int) -> Path:
    """The file of stream `index` for an output named `path` with several sources: out.mp4 → out.s1.mp4."""
    return path.with_name(f"{path.stem}.s{index}{path.suffix}")


def readable_frames(path: Path) -> int:
    """How many frames a video file really holds, by decoding it (0 when it does not open)."""
    count = 0
    with quiet_opencv():  # a damaged file is counted here, not logged
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        while capture.isOpened() and capture.grab():
            count += 1
    capture.release()
    return count


class Window:
    """The overlay window (`--show`); `q` or Esc ends the run. Needs an OpenCV build with GUI support."""

    def __init__(self, modality: str, title: str = "socket-edge") -> None:
        self.modality, self.title = modality, title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise MissingDependencyError(
                "--show needs an OpenCV build with GUI support; socket-edge installs opencv-python-headless. "
                "Use --save out.mp4, or on a Jetson use JetPack's system OpenCV (python3-opencv) in a venv made "
                "with --system-site-packages, without opencv-python-headless"
            ) from None
        self.closed = False

    def write(self, rec: dict, image: np.ndarray) -> None:
        cv2.imshow(self.title, annotate(image, self.modality, rec))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.closed = True

    def close(self) -> None:
        cv2.destroyWindow(self.title)
