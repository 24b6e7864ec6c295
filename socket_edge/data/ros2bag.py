"""Images from ROS 2 bags, read with rosbags (pure Python, no ROS install: the `ros2` extra), and
the vision_msgs types `run --record` writes, registered once in one typestore.

A bag is a rosbag2 folder (metadata.yaml beside .db3 or .mcap files, as `ros2 bag record` makes
it) or one .mcap/.db3 file. Images are `sensor_msgs/msg/Image` as realsense-ros publishes them:
16UC1 depth in millimetres (0 = no reading), mono8/mono16 infrared, rgb8/bgr8 colour."""

from __future__ import annotations

import bisect
import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socket_edge.errors import DataError, require

IMAGE = "sensor_msgs/msg/Image"
DEPTH_UNIT = 0.001  # 16UC1 depth is in millimetres (REP 118)
# encoding → (modality, numpy dtype, channels)
TARGET_ENCODINGS = {"16UC1": ("depth", "u2", 1), "mono16": ("ir", "u2", 1), "mono8": ("ir", "u1", 1)}
COLOUR_ENCODINGS = {"rgb8": ("rgb", "u1", 3), "bgr8": ("rgb", "u1", 3)}
DESCRIBED = {"16UC1": "16UC1 (depth, mm)", "mono16": "mono16 (infrared)", "mono8": "mono8 (infrared)",
             "rgb8": "rgb8", "bgr8": "bgr8"}

# vision_msgs 4.x (ROS 2 Humble, Jazzy): the .msg text of the types `run --record` writes; std_msgs
# and builtin_interfaces come with rosbags' own typestore
VISION_MSGS = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/Classification": "std_msgs/Header header\nvision_msgs/ObjectHypothesis[] results\n",
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    "vision_msgs/msg/LabelInfo": "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n",
}


@functools.cache
def typestore():
    """rosbags' typestore of ROS 2 Humble's standard messages plus vision_msgs (built once)."""
    typesys = require("rosbags.typesys", "ros2", needed_by="reading and writing ROS 2 bags")
    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    types: dict = {}
    for name, text in VISION_MSGS.items():
        types.update(typesys.get_types_from_msg(text, name))
    store.register(types)
    return store


def _reader_errors() -> tuple[type[BaseException], ...]:
    """What rosbags raises for a damaged bag: its ReaderError, and the storage's own (SQLite, I/O, decoding)."""
    from rosbags.rosbag2 import ReaderError

    errors: list[type[BaseException]] = [ReaderError, OSError, ValueError, IndexError, struct.error, EOFError]
    try:
        import apsw  # rosbags' SQLite binding

        errors.append(apsw.Error)
    except ImportError:
        pass
    return tuple(errors)


@dataclass(frozen=True)
class BagImage:
    """One decoded image message: H×W (uint16/uint8) or H×W×3 RGB uint8, its header stamp (ns) and
    frame_id, its encoding and the modality that encoding is."""

    image: np.ndarray
    stamp_ns: int
    frame_id: str
    encoding: str
    modality: str


def header_stamp(raw: bytes | memoryview) -> int:
    """The header stamp (ns) of a CDR-serialized message that starts with a std_msgs/Header, read
    without decoding the rest (the pixels)."""
    if len(raw) < 12:
        raise ValueError("message shorter than its header")
    order = "<" if raw[1] & 1 else ">"  # the CDR encapsulation's byte order
    sec, nanosec = struct.unpack_from(order + "iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


def describe(encodings) -> str:
    return ", ".join(DESCRIBED[e] for e in encodings)


class Bag:
    """An open rosbag2 (folder or one .mcap/.db3 file): its image topics, and their messages in
    recording order. Every failure is one DataError naming the bag and the fix."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.reader = None

    def open(self) -> "Bag":
        rosbag2 = require("rosbags.rosbag2", "ros2", needed_by=f"reading the ROS 2 bag {self.path}")
        if not self.path.exists():
            raise DataError(f"ROS 2 bag {self.path} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise DataError(f"{self.path} is a folder without metadata.yaml, so not a rosbag2 folder; give the folder "
                            "`ros2 bag record` made, or its .mcap/.db3 file")
        if self.path.is_file() and self.path.suffix.lower() not in (".mcap", ".db3"):
            raise DataError(f"{self.path} is not a ROS 2 bag: give a rosbag2 folder, or one .mcap or .db3 file")
        try:
            self.reader = rosbag2.Reader(self.path)
            self.reader.open()
        except _reader_errors() as exc:
            self.reader = None
            raise self.damaged(exc) from None
        return self

    def damaged(self, exc: BaseException) -> DataError:
        fix = ("an MCAP whose recording was cut off lacks its end: `mcap recover` (the mcap CLI) or "
               "`ros2 bag reindex` repairs it" if self.path.suffix.lower() == ".mcap" or self.path.is_dir()
               else "re-record it, or repair the SQLite file (`ros2 bag reindex`)")
        return DataError(f"ROS 2 bag {self.path} is truncated or damaged ({type(exc).__name__}: {exc}); {fix}")

    def connections(self, topic: str, accepted: dict, option: str = "topic") -> list:
        """The connections of `topic`, an Image topic; one line naming the topics present otherwise."""
        found = [c for c in self.reader.connections if c.topic == topic]
        if not found:
            present = ", ".join(f"{c.topic} ({c.msgtype})" for c in self.reader.connections) or "none"
            raise DataError(f"ROS 2 bag {self.path} has no topic {topic}; it has {present}: pick one with "
                            f"?{option}=NAME")
        for conn in found:
            if conn.msgtype == "sensor_msgs/msg/CompressedImage":
                raise DataError(f"{topic} in {self.path} is sensor_msgs/msg/CompressedImage, which socket-edge does "
                                f"not read yet; record the raw topic (sensor_msgs/msg/Image, {describe(accepted)})")
            if conn.msgtype != IMAGE:
                raise DataError(f"{topic} in {self.path} is {conn.msgtype}, not {IMAGE}; pick an image topic "
                                f"({describe(accepted)})")
        return found

    def count(self, connections: list) -> int:
        return sum(int(c.msgcount) for c in connections)

    def messages(self, connections: list) -> Iterator[tuple[str, bytes]]:
        """(topic, CDR bytes) of these connections, in recording order."""
        errors = _reader_errors()
        iterator = self.reader.messages(connections=connections)
        while True:
            try:
                conn, _, raw = next(iterator)
            except StopIteration:
                return
            except errors as exc:
                raise self.damaged(exc) from None
            yield conn.topic, raw

    def decode(self, topic: str, raw: bytes, accepted: dict) -> BagImage:
        """A CDR Image message → BagImage; one line for an encoding not in `accepted` or a size that
        does not add up."""
        try:
            msg = typestore().deserialize_cdr(raw, IMAGE)
        except _reader_errors() as exc:
            raise self.damaged(exc) from None
        encoding = str(msg.encoding)
        where = f"{topic} in {self.path}"
        if encoding not in accepted:
            raise DataError(f"{where} has images of encoding {encoding!r}; socket-edge takes {describe(accepted)}"
                            + ("; 32FC1 depth (metres) is not supported: record realsense-ros's 16UC1 topic"
                               if encoding == "32FC1" else ""))
        modality, dtype, channels = accepted[encoding]
        height, width, step = int(msg.height), int(msg.width), int(msg.step)
        row = width * channels * np.dtype(dtype).itemsize
        data = np.asarray(msg.data, dtype=np.uint8)
        if height == 0 or width == 0 or step < row or data.size < step * height:
            raise DataError(f"{where}: a {width}×{height} {encoding} image with step {step} needs "
                            f"{max(row, step) * height} bytes but the message holds {data.size}; the bag is damaged")
        rows = np.ascontiguousarray(data[:step * height].reshape(height, step)[:, :row])
        image = rows.view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<"))
        image = image.astype(np.dtype(dtype)).reshape((height, width, channels) if channels > 1 else (height, width))
        if encoding == "bgr8":
            image = np.ascontiguousarray(image[..., ::-1])
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        return BagImage(image, stamp, str(msg.header.frame_id), encoding, modality)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class ImageTopic:
    """The images of one topic, in recording order: open() (checks the topic and its first image),
    read() → BagImage | None at the end, close(). `count`: the messages the bag says it holds;
    `modality`: what the first image is. Every image must have the first one's encoding."""

    def __init__(self, path: str | Path, topic: str, accepted: dict = TARGET_ENCODINGS) -> None:
        self.bag, self.topic, self.accepted = Bag(path), topic, accepted
        self.count = 0
        self.modality: str | None = None
        self.encoding: str | None = None
        self._messages: Iterator | None = None
        self._first: BagImage | None = None

    def open(self) -> None:
        self.bag.open()
        try:
            connections = self.bag.connections(self.topic, self.accepted)
            self.count = self.bag.count(connections)
            self._messages = self.bag.messages(connections)
            self._first = self._next()
            if self._first is None:
                raise DataError(f"{self.topic} in {self.bag.path} holds no messages")
        except BaseException:
            self.close()
            raise
        self.modality, self.encoding = self._first.modality, self._first.encoding

    def _next(self) -> BagImage | None:
        item = next(self._messages, None)
        return None if item is None else self.bag.decode(self.topic, item[1], self.accepted)

    def read(self) -> BagImage | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._messages is None:
            return None
        image = self._next()
        if image is not None and image.encoding != self.encoding:
            raise DataError(f"{self.topic} in {self.bag.path} changes encoding from {self.encoding} to "
                            f"{image.encoding}; one topic, one encoding")
        return image

    def close(self) -> None:
        self._messages = None
        self.bag.close()


class PairedTopics:
    """(colour, target) image pairs of two topics of one bag, paired by header stamp: exactly, or
    with the nearest colour stamp within `tolerance_ns`, each colour image used once. open() reads
    every stamp first (headers only, no pixels); read() → (colour, target) BagImages | None at the
    end. `unpaired_target`/`unpaired_colour`: the images of each topic that found no partner."""

    def __init__(self, path: str | Path, colour_topic: str, target_topic: str, tolerance_ns: int = 0) -> None:
        self.bag, self.colour_topic, self.target_topic = Bag(path), colour_topic, target_topic
        self.tolerance_ns = tolerance_ns
        self.matches: dict[int, int] = {}  # target index → colour index
        self.unpaired_target = self.unpaired_colour = 0
        self.targets = 0
        self._pairs: Iterator | None = None

    def open(self) -> None:
        self.bag.open()
        try:
            colour = self.bag.connections(self.colour_topic, COLOUR_ENCODINGS, option="colour_topic")
            target = self.bag.connections(self.target_topic, TARGET_ENCODINGS)
            self.connections = colour + target
            stamps: dict[str, list[int]] = {self.colour_topic: [], self.target_topic: []}
            for topic, raw in self.bag.messages(self.connections):
                try:
                    stamps[topic].append(header_stamp(raw))
                except ValueError as exc:
                    raise self.bag.damaged(exc) from None
            self.matches = match_stamps(stamps[self.target_topic], stamps[self.colour_topic], self.tolerance_ns)
            self.targets = len(stamps[self.target_topic])
            self.unpaired_target = self.targets - len(self.matches)
            self.unpaired_colour = len(stamps[self.colour_topic]) - len(self.matches)
            self._pairs = self._paired()
        except BaseException:
            self.close()
            raise

    def _paired(self) -> Iterator[tuple[BagImage, BagImage]]:
        wanted_colour = {c: t for t, c in self.matches.items()}
        colours: dict[int, BagImage] = {}  # decoded colour images waiting for their target, and the reverse
        targets: dict[int, BagImage] = {}
        seen = {self.colour_topic: 0, self.target_topic: 0}
        for topic, raw in self.bag.messages(self.connections):
            index = seen[topic]
            seen[topic] += 1
            if topic == self.target_topic and index in self.matches:
                image = self.bag.decode(topic, raw, TARGET_ENCODINGS)
                partner = colours.pop(self.matches[index], None)
                if partner is None:
                    targets[self.matches[index]] = image
                else:
                    yield partner, image
            elif topic == self.colour_topic and index in wanted_colour:
                image = self.bag.decode(topic, raw, COLOUR_ENCODINGS)
                partner = targets.pop(index, None)
                if partner is None:
                    colours[index] = image
                else:
                    yield image, partner

    def read(self) -> tuple[BagImage, BagImage] | None:
        return None if self._pairs is None else next(self._pairs, None)

    def close(self) -> None:
        self._pairs = None
        self.bag.close()


def match_stamps(targets: list[int], colours: list[int], tolerance_ns: int) -> dict[int, int]:
    """{target index: colour index}: each target stamp paired with the nearest colour stamp within
    `tolerance_ns` (0: equal stamps only) that no earlier target took."""
    order = sorted(range(len(colours)), key=colours.__getitem__)
    ordered = [colours[i] for i in order]
    used: set[int] = set()
    matches: dict[int, int] = {}
    for t_index, stamp in enumerate(targets):
        at = bisect.bisect_left(ordered, stamp)
        candidates = [k for k in (at - 1, at, at + 1) if 0 <= k < len(ordered) and order[k] not in used]
        if not candidates:
            continue
        best = min(candidates, key=lambda k: abs(ordered[k] - stamp))
        if abs(ordered[best] - stamp) <= tolerance_ns:
            matches[t_index] = order[best]
            used.add(order[best])
    return matches
