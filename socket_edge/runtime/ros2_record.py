"""`run --record`: the results as a ROS 2 bag that `ros2 bag play`, Foxglove and rviz read.

Per frame one `vision_msgs/msg/Classification` on `/socket_edge/streamN/classification` (N: the
stream's index, as in `run --json`): the header copied from the source image (a ROS 2 bag's
frames), or the frame's time and the frame_id `socket_edge_streamN` (other sources); the results
are the --top-k classes, best first, each an `ObjectHypothesis` whose class_id is the class's
index as text. Once, before the first classification, a `vision_msgs/msg/LabelInfo` on
`/socket_edge/label_info` maps each index to its class name (threshold 0: nothing is withheld).

Two forms, by the name given: OUT.mcap is one self-contained MCAP file (schemas, QoS and the
rosbag2 metadata inside: Foxglove opens it, `ros2 bag play [-s mcap] OUT.mcap` reads a bare file);
OUT without a suffix is a rosbag2 folder (OUT/metadata.yaml + OUT/OUT.mcap), as
`ros2 bag record -s mcap -o OUT` makes it and every `ros2 bag play` reads it. The bag is written into a temporary folder beside OUT and moved into place by commit()
after a run that ended well; a failed run leaves nothing under OUT."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from socket_edge import atomic
from socket_edge.atomic import write_error
from socket_edge.errors import OutputError, UsageError, require

LABEL_TOPIC = "/socket_edge/label_info"
CLASSIFICATION = "vision_msgs/msg/Classification"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
BAG_VERSION = 8  # rosbag2 metadata version 8: Humble (which reads up to 5 and ignores the newer keys) to Jazzy


def classification_topic(stream: int) -> str:
    return f"/socket_edge/stream{stream}/classification"


def stream_frame_id(stream: int) -> str:
    """The frame_id of results from a source without ROS headers."""
    return f"socket_edge_stream{stream}"


def check_record_path(path: Path) -> None:
    """Refuse a --record name that is neither OUT.mcap nor a suffix-less folder name, and an existing folder."""
    if path.suffix and path.suffix.lower() != ".mcap":
        raise UsageError(f"--record {path}: name an .mcap file (one MCAP file) or a folder without a suffix (a rosbag2 "
                         "folder with metadata.yaml); see docs/ros2.md")
    if path.is_dir():
        raise UsageError(f"--record {path} is an existing folder; a folder is never replaced, not even with "
                         "--overwrite: remove it yourself or record to another name")


class ClassificationBag:
    """The bag one run records into: output(stream) gives each stream's output (write(rec, image),
    close()); commit() moves the bag into place, discard() drops it."""

    def __init__(self, path: str | Path, class_names) -> None:
        self.path = Path(path)
        check_record_path(self.path)
        require("rosbags.rosbag2", "ros2", needed_by="run --record")
        self.class_names = list(class_names)
        self.index = {name: i for i, name in enumerate(self.class_names)}
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.rosbag.tmp")
        self.inner = self.tmp / (self.path.stem if self.path.suffix else self.path.name)
        self.writer = None
        self.connections: dict[int, object] = {}
        self.messages = 0
        self.store = None

    def output(self, stream: int) -> "StreamRecorder":
        return StreamRecorder(self, stream)

    def _open(self, stamp_ns: int, frame_id: str) -> None:
        rosbag2 = require("rosbags.rosbag2", "ros2", needed_by="run --record")
        from socket_edge.data.ros2bag import typestore

        self.store = typestore()
        atomic.remove_stale(self.path, r"\.rosbag\.tmp", folders=True)
        try:
            self.tmp.mkdir(parents=True)
            writer = rosbag2.Writer(self.inner, version=BAG_VERSION, storage_plugin=rosbag2.StoragePlugin.MCAP)
            writer.open()
            self.writer = writer
            label = self.writer.add_connection(LABEL_TOPIC, LABEL_INFO, typestore=self.store)
        except OSError as exc:
            self.discard()
            raise write_error(self.path, exc) from None
        except rosbag2.WriterError as exc:
            self.discard()
            raise OutputError(f"cannot write the ROS 2 bag {self.path}: {exc}") from None
        types = self.store.types
        info = types[LABEL_INFO](
            header=self._header(stamp_ns, frame_id),
            class_map=[types["vision_msgs/msg/VisionClass"](class_id=i, class_name=name)
                       for i, name in enumerate(self.class_names)],
            threshold=0.0)
        self._write(label, stamp_ns, info, LABEL_INFO)

    def _header(self, stamp_ns: int, frame_id: str):
        types = self.store.types
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                            frame_id=frame_id)

    def _write(self, connection, stamp_ns: int, message, msgtype: str) -> None:
        try:
            self.writer.write(connection, max(int(stamp_ns), 0), self.store.serialize_cdr(message, msgtype))
        except OSError as exc:
            self.discard()
            raise write_error(self.path, exc) from None
        self.messages += 1

    def write(self, stream: int, rec: dict) -> None:
        """One Classification of stream `stream` from a `run` record."""
        header = rec.get("header")
        if header is not None:
            stamp_ns = int(header["stamp"]["sec"]) * 1_000_000_000 + int(header["stamp"]["nanosec"])
            frame_id = str(header["frame_id"])
        else:
            stamp_ns, frame_id = round(float(rec["timestamp"]) * 1e9), stream_frame_id(stream)
        if self.writer is None:
            self._open(stamp_ns, frame_id)
        if stream not in self.connections:
            self.connections[stream] = self.writer.add_connection(classification_topic(stream), CLASSIFICATION,
                                                                  typestore=self.store)
        types = self.store.types
        hypothesis = types["vision_msgs/msg/ObjectHypothesis"]
        results = [hypothesis(class_id=str(self.index[k["label"]]), score=float(k["score"])) for k in rec["top_k"]]
        message = types[CLASSIFICATION](header=self._header(stamp_ns, frame_id), results=results)
        self._write(self.connections[stream], stamp_ns, message, CLASSIFICATION)

    def commit(self) -> bool:
        """Close the bag and move it to its name; False when no frame was recorded (nothing written)."""
        if self.writer is None:
            return False
        try:
            self.writer.close()
            self.writer = None
            if self.path.suffix:
                os.replace(self.inner / f"{self.inner.name}.mcap", self.path)
            else:
                os.rename(self.inner, self.path)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        finally:
            self.discard()
        return True

    def discard(self) -> None:
        """Drop the temporary bag (safe to call twice)."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.close()
            except OSError:  # the storage failed already: its file goes anyway
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class StreamRecorder:
    """One stream's `run` output into a ClassificationBag."""

    def __init__(self, bag: ClassificationBag, stream: int) -> None:
        self.bag, self.stream = bag, stream

    def write(self, rec: dict, image) -> None:
        self.bag.write(self.stream, rec)

    def close(self) -> None:
        """The bag is committed or discarded by its owner, once every stream has ended."""

