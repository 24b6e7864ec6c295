"""How OpenCV opens the two 8-bit live URIs: `csi://N` (a Jetson CSI camera through an
`nvarguscamerasrc` GStreamer pipeline, the pipeline JetsonHacks' CSI-Camera examples use) and
`rtsp://…` (FFmpeg, with open/read timeouts so that a lost stream is noticed and reopened).

Both deliver 8-bit BGR frames: sources.OpenCVSource turns them grey for IR/NIR models and RGB
for RGB models; a depth model is refused when the source is made (`refuse_depth`)."""

from __future__ import annotations

import os
import threading

import cv2

from socket_edge.errors import ContractError, DataError, MissingDependencyError
from socket_edge.runtime.quiet import quiet_opencv
from socket_edge.runtime.uri import SourceSpec

RTSP_TIMEOUT_MS = 5000  # open and read: a camera silent this long is lost (FFmpeg's own default is 30 s)
LISTEN_TIMEOUT_S = 10   # listen=1: how long one open waits for a publisher before the next try
FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"  # read by OpenCV at each open; process-wide
_options_lock = threading.Lock()

JETPACK_OPENCV = ("on a Jetson use JetPack's OpenCV, which has GStreamer: sudo apt-get install nvidia-opencv, make "
                  "the venv with python3 -m venv --system-site-packages, then pip uninstall -y opencv-python-headless "
                  "in it so that the system cv2 is imported (check: python3 -c \"import cv2; "
                  "print(cv2.getBuildInformation())\" | grep GStreamer)")


def refuse_depth(spec: SourceSpec, modality: str) -> None:
    """One line for a depth model fed an 8-bit video URI."""
    if modality == "depth":
        raise ContractError(f"source {spec.uri} delivers 8-bit video ({spec.kind}:// carries no 16-bit depth) and this "
                            "model expects depth; run an IR or RGB model on it, or give the depth model a RealSense, "
                            "a 16-bit FFV1 video or a 16-bit PNG folder")


def gstreamer_in_opencv() -> bool:
    """Whether this OpenCV was built with GStreamer (its build information says `GStreamer: YES`)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def csi_pipeline(spec: SourceSpec) -> str:
    """The GStreamer pipeline of a CSI camera: Argus (ISP) → NVMM NV12 → nvvidconv → BGRx → BGR into
    an appsink that keeps only the newest frame (the capture thread drops the rest)."""
    return (f"nvarguscamerasrc sensor-id={spec.target} ! "
            f"video/x-raw(memory:NVMM), width=(int){spec.width}, height=(int){spec.height}, "
            f"format=(string)NV12, framerate=(fraction){spec.fps}/1 ! "
            "nvvidconv flip-method=0 ! video/x-raw, format=(string)BGRx ! videoconvert ! "
            "video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1")


def open_csi(spec: SourceSpec) -> cv2.VideoCapture:
    """A CSI camera through OpenCV's GStreamer backend; one line naming the OpenCV to use where it has none."""
    if not gstreamer_in_opencv():
        raise MissingDependencyError(
            f"{spec.uri} needs OpenCV built with GStreamer, and this OpenCV {cv2.__version__} has none (pip's "
            f"opencv-python-headless never has); {JETPACK_OPENCV}", fix=JETPACK_OPENCV)
    capture = cv2.VideoCapture(csi_pipeline(spec), cv2.CAP_GSTREAMER)
    if not capture.isOpened():
        capture.release()
        raise DataError(f"cannot open CSI camera {spec.target} ({spec.width}×{spec.height} at {spec.fps} FPS); check "
                        "the ribbon cable, that nvargus-daemon runs, that no other program uses the camera and that "
                        "the sensor has this mode "
                        f"(gst-launch-1.0 nvarguscamerasrc sensor-id={spec.target} num-buffers=1 ! fakesink)")
    return capture


def ffmpeg_options(spec: SourceSpec) -> str | None:
    """FFmpeg's options for an RTSP URI (OpenCV's `key;value|key;value`), None when it needs none."""
    options = []
    if spec.transport:
        options.append(f"rtsp_transport;{spec.transport}")
    if spec.listen:
        options += ["rtsp_flags;listen", f"listen_timeout;{LISTEN_TIMEOUT_S}"]
    return "|".join(options) or None


def open_rtsp(spec: SourceSpec) -> cv2.VideoCapture:
    """An RTSP stream through OpenCV's FFmpeg backend, with open/read timeouts; the options go through
    OPENCV_FFMPEG_CAPTURE_OPTIONS, set only for this open (under a lock: the variable is process-wide)."""
    options = ffmpeg_options(spec)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, RTSP_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, RTSP_TIMEOUT_MS]
    with _options_lock:
        before = os.environ.get(FFMPEG_OPTIONS)
        if options:
            os.environ[FFMPEG_OPTIONS] = options
        try:
            with quiet_opencv():  # our one line says what failed
                capture = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
        finally:
            if options and before is None:
                os.environ.pop(FFMPEG_OPTIONS, None)
            elif options:
                os.environ[FFMPEG_OPTIONS] = before
    if not capture.isOpened():
        capture.release()
        waited = f"no publisher connected within {LISTEN_TIMEOUT_S} s" if spec.listen else "it did not answer"
        raise DataError(f"cannot open RTSP stream {spec.target} ({waited}); check the address, the network and "
                        "the camera's credentials, or try ?transport=tcp")
    return capture
