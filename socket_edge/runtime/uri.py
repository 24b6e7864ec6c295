"""One parser for every source URI `socket-edge run --source` takes → a frozen SourceSpec.

    realsense://[SERIAL]?stream=depth|infrared&index=1&width=640&height=480&fps=30   live RealSense camera
    rec.bag | rec.db3 [?stream=depth|infrared&index=1]                                RealSense recording (playback)
    0 | /dev/video0 | v4l2:///dev/video0 [?modality=ir]                              OpenCV camera (UVC IR, thermal)
    clip.mkv | clip.mp4 | clip.avi [?depth_scale=0.001&modality=depth]                 video file (16-bit FFV1 for depth)
    frames/ | 'frames/*.png' [?depth_scale=0.001&loop=1&modality=ir]                  image folder or glob (16-bit PNG depth)
    csi://0 [?width=1280&height=720&fps=30&modality=ir]                               Jetson CSI camera (GStreamer)
    rtsp://HOST:PORT/PATH [?transport=tcp&modality=ir&listen=1]                       RTSP stream (8-bit, live)
    ros2bag://PATH?topic=/camera/camera/depth/image_rect_raw                         ROS 2 bag (sensor_msgs/Image)

Query options common to files and cameras: `modality` (what the frames are; default: from the
device, or sniffed from the first file), `depth_scale` (metres per depth unit of the files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from socket_edge.contract import MODALITIES, UNIT_RANGE, number_problem
from socket_edge.errors import UsageError

RECORDING_SUFFIXES = (".bag", ".db3")
VIDEO_SUFFIXES = (".mkv", ".mp4", ".avi", ".mov", ".webm", ".m4v", ".nut")
REALSENSE_STREAMS = {"depth": "depth", "infrared": "ir", "ir": "ir"}

SCHEMES = """source URIs:
  realsense://[SERIAL]?stream=depth|infrared&index=1&width=640&height=480&fps=30
                        live RealSense camera (depth scale from the device)
  REC.bag | REC.db3[?stream=depth|infrared&index=1]
                        RealSense recording, played back frame by frame
  0 | /dev/video0 | v4l2:///dev/video0[?modality=ir]
                        OpenCV camera (UVC infrared or thermal)
  CLIP.mkv|.mp4|.avi[?depth_scale=0.001]
                        video file (16-bit FFV1 for depth)
  DIR/ | 'DIR/*.png'[?depth_scale=0.001&loop=1]
                        image folder or glob (16-bit PNG for depth)
  csi://N[?width=1280&height=720&fps=30]
                        Jetson CSI camera N (nvarguscamerasrc; needs an OpenCV built with GStreamer)
  rtsp://HOST:PORT/PATH[?transport=tcp|udp&listen=1]
                        RTSP stream (IP camera, encoder); reconnected with backoff when lost;
                        listen=1 waits for a publisher to push to this address instead
  ros2bag://PATH?topic=/camera/camera/depth/image_rect_raw
                        a ROS 2 bag (rosbag2 folder, .mcap or .db3) of sensor_msgs/Image: 16UC1 depth (mm),
                        mono8/mono16 infrared; needs the ros2 extra (docs/ros2.md)
  csi:// and rtsp:// frames are 8-bit: they feed IR (grey) or RGB models, never depth ones
  options: modality=depth|ir|nir|rgb (what the frames are), depth_scale=M (metres per unit)"""

_KNOWN = {
    "realsense": {"stream", "index", "width", "height", "fps", "modality"},
    "recording": {"stream", "index", "modality"},
    "camera": {"modality", "width", "height", "fps"},
    "video": {"modality", "depth_scale"},
    "images": {"modality", "depth_scale", "loop"},
    "csi": {"modality", "width", "height", "fps"},
    "rtsp": {"modality", "transport", "listen"},
    "ros2bag": {"topic"},
}
EIGHT_BIT_KINDS = ("csi", "rtsp")  # 8-bit video only: never depth
CSI_DEFAULTS = {"width": 1280, "height": 720, "fps": 30}
RTSP_TRANSPORTS = ("tcp", "udp")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source URI.

    kind: realsense (live), recording (RealSense playback), camera (OpenCV), video, images, csi (Jetson
    CSI camera), rtsp (an RTSP stream), ros2bag (an image topic of a ROS 2 bag).
    target: serial number, file/folder/glob path, camera index/device path, CSI sensor id or RTSP URL
    (with the query options socket-edge does not know: they belong to the camera).
    live: frames arrive in real time (drop the oldest when inference lags; reopen on loss)."""

    uri: str
    kind: str
    target: str = ""
    stream: str = "depth"
    index: int = 0
    width: int = 0
    height: int = 0
    fps: int = 0
    modality: str | None = None
    depth_scale: float | None = None
    loop: bool = False
    transport: str | None = None  # rtsp: tcp or udp (FFmpeg's default: udp, then tcp)
    listen: bool = False          # rtsp: wait for a publisher to push to this address
    topic: str | None = None      # ros2bag: the image topic

    @property
    def live(self) -> bool:
        return self.kind in ("realsense", "camera", "csi", "rtsp")


def parse_source(uri: str, depth_scale: float | None = None) -> SourceSpec:
    """Parse a source URI (see SCHEMES); `depth_scale` (--depth-scale) applies where the URI sets none.
    Fails with one line naming the URI and the accepted forms."""
    text = str(uri).strip()
    if not text:
        raise UsageError("--source is empty; " + _hint())
    query: dict[str, str] = {}
    head, mark, tail = text.rpartition("?")
    if mark and "=" in tail and not Path(text).exists():  # a glob's own '?' wildcards stay in the path
        text, query = head, dict(parse_qsl(tail, keep_blank_values=True))
    if text.startswith("realsense://"):
        kind, target = "realsense", text[len("realsense://"):].strip("/")
    elif text.startswith("v4l2://"):
        kind, target = "camera", text[len("v4l2://"):]
    elif text.startswith("csi://"):
        kind, target = "csi", text[len("csi://"):].strip("/")
        if not target.isdigit():
            raise UsageError(f"source {uri!r}: a CSI camera is csi://N with N its sensor id (csi://0), got {target!r}")
    elif text.lower().startswith("rtsp://"):
        kind, target = "rtsp", text
        query, camera = _split_rtsp_query(query)
        if camera:  # the camera's own query (channel=1&subtype=0) stays in its URL
            target = f"{text}?{urlencode(camera)}"
    elif text.startswith("ros2bag://"):
        kind, target = "ros2bag", text[len("ros2bag://"):]
    elif "://" in text:
        raise UsageError(f"source {uri!r} has an unknown scheme; " + _hint())
    elif text.isdigit() or text.startswith("/dev/video"):
        kind, target = "camera", text
    elif Path(text).suffix.lower() in RECORDING_SUFFIXES:
        kind, target = "recording", text
    elif Path(text).suffix.lower() in VIDEO_SUFFIXES:
        kind, target = "video", text
    elif Path(text).is_dir() or any(c in text for c in "*?["):
        kind, target = "images", text
    elif not Path(text).exists():
        raise UsageError(f"source {uri!r} does not exist; " + _hint())
    else:
        raise UsageError(f"source {uri!r} is not a recording, video, image folder or camera; " + _hint())
    unknown = sorted(set(query) - _KNOWN[kind])
    if unknown:
        raise UsageError(f"source {uri!r}: {kind} sources take no option {', '.join(unknown)} "
                         f"(they take {', '.join(sorted(_KNOWN[kind]))})")
    spec = dict(uri=str(uri), kind=kind, target=target)
    if "stream" in query:
        if query["stream"] not in REALSENSE_STREAMS:
            raise UsageError(f"source {uri!r}: stream must be depth or infrared, got {query['stream']!r}")
        spec["stream"] = "infrared" if query["stream"] in ("infrared", "ir") else "depth"
    for key in ("index", "width", "height", "fps"):
        if key in query:
            spec[key] = _int(uri, key, query[key])
    if "stream" in spec and spec["stream"] == "infrared" and "index" not in query:
        spec["index"] = 1
    if "modality" in query:
        if query["modality"] not in MODALITIES:
            raise UsageError(f"source {uri!r}: modality must be one of {', '.join(MODALITIES)}, "
                             f"got {query['modality']!r}")
        spec["modality"] = query["modality"]
    if kind in ("realsense", "recording"):
        spec["modality"] = REALSENSE_STREAMS[spec.get("stream", "depth")]
    scale = query.get("depth_scale")
    if scale is not None:
        try:
            value = float(scale)
        except ValueError:
            raise UsageError(f"source {uri!r}: depth_scale must be metres per unit, e.g. 0.001, got {scale!r}") from None
        problem = number_problem(value, *UNIT_RANGE)
        if problem:
            raise UsageError(f"source {uri!r}: depth_scale (metres per unit, e.g. 0.001) {problem}")
        spec["depth_scale"] = value
    elif depth_scale is not None and kind in ("video", "images"):
        problem = number_problem(depth_scale, *UNIT_RANGE)
        if problem:
            raise UsageError(f"--depth-scale (metres per unit, e.g. 0.001) {problem}")
        spec["depth_scale"] = float(depth_scale)
    if kind == "ros2bag":
        if not target or not query.get("topic"):
            raise UsageError(f"source {uri!r}: a ROS 2 bag is ros2bag://PATH?topic=/camera/camera/depth/image_rect_raw "
                             "(the bag's folder or .mcap/.db3 file, and its image topic)")
        spec["topic"] = query["topic"]
    if "loop" in query:
        spec["loop"] = _flag(query["loop"])
    if kind in EIGHT_BIT_KINDS:
        _eight_bit_options(uri, kind, query, spec)
    return SourceSpec(**spec)


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "")


def _split_rtsp_query(query: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(socket-edge's options, the camera's own) of an rtsp:// URL's query."""
    ours = {k: v for k, v in query.items() if k in _KNOWN["rtsp"]}
    return ours, {k: v for k, v in query.items() if k not in ours}


def _eight_bit_options(uri: str, kind: str, query: dict[str, str], spec: dict) -> None:
    """csi:// and rtsp:// options: frame size defaults, transport, listen; never depth."""
    if spec.get("modality") == "depth":
        raise UsageError(f"source {uri!r}: {kind}:// delivers 8-bit video, not depth; use modality=ir, nir or rgb")
    if kind == "csi":
        for key, value in CSI_DEFAULTS.items():
            spec[key] = spec.get(key) or value
        return
    if "transport" in query:
        if query["transport"] not in RTSP_TRANSPORTS:
            raise UsageError(f"source {uri!r}: transport must be tcp or udp, got {query['transport']!r}")
        spec["transport"] = query["transport"]
    spec["listen"] = _flag(query["listen"]) if "listen" in query else False


INT_LIMITS = {"index": 16, "width": 16384, "height": 16384, "fps": 1000}  # the most a camera option can be


def _int(uri: str, key: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:  # also a number of more than 4300 digits
        number = None
    problem = "must be a whole number" if number is None else number_problem(number, 0, INT_LIMITS[key], whole=True)
    if problem:
        raise UsageError(f"source {uri!r}: {key} {problem.split(', got')[0]}, got {value!r}")
    return number


def _hint() -> str:
    return ("use realsense://[SERIAL]?stream=depth, a .bag/.db3 recording, a camera (0, /dev/video0), csi://N, "
            "rtsp://HOST/PATH, ros2bag://PATH?topic=T, a video file or an image folder/glob "
            "(socket-edge run --help lists them)")
