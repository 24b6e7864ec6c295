"""Readers of ROS 2 bags fuzzed with Hypothesis: a bag with random damage, and Image messages with
random fields, end in images or one line (a DataError), never in another exception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags.rosbag2", reason="the ros2 extra (rosbags) is not installed")
pytest.importorskip("hypothesis", reason="Hypothesis is not installed")

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from test_ros2bag import DEPTH, bag_of, depth_frames  # noqa: E402
from socket_edge.data.ros2bag import COLOUR_ENCODINGS, TARGET_ENCODINGS, Bag, ImageTopic, typestore  # noqa: E402
from socket_edge.errors import DataError  # noqa: E402


@pytest.fixture(scope="module")
def small_bags(tmp_path_factory) -> dict[str, bytes]:
    """The bytes of a small .mcap and .db3 bag of three 16UC1 images."""
    root = tmp_path_factory.mktemp("fuzz")
    files = {}
    for storage in ("mcap", "sqlite3"):
        bag = bag_of(root / storage, DEPTH, "16UC1", depth_frames(3), storage)
        file = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
        files[file.suffix] = file.read_bytes()
    return files


def read_all(path: Path) -> list:
    images = ImageTopic(path, DEPTH)
    images.open()
    try:
        return list(iter(images.read, None))
    finally:
        images.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".mcap", ".db3"]), cut=st.floats(0, 1), flips=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=6))
def test_damaged_bags_end_in_images_or_one_line(small_bags, tmp_path, suffix, cut, flips):
    data = bytearray(small_bags[suffix])
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))] if cut < 1 else data))
    try:
        images = read_all(path)
    except DataError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(i.image.dtype == np.uint16 and i.image.ndim == 2 for i in images)


@settings(max_examples=60, deadline=None)
@given(encoding=st.sampled_from(["16UC1", "mono8", "mono16", "rgb8", "bgr8", "32FC1", "", "16UC1 "]),
       height=st.integers(0, 5), width=st.integers(0, 5), step=st.integers(0, 40), size=st.integers(0, 120),
       big_endian=st.integers(0, 1))
def test_image_fields_end_in_an_image_or_one_line(encoding, height, width, step, size, big_endian):
    types = typestore().types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="f")
    message = types["sensor_msgs/msg/Image"](header=header, height=height, width=width, encoding=encoding,
                                             is_bigendian=big_endian, step=step, data=np.arange(size, dtype=np.uint8))
    raw = typestore().serialize_cdr(message, "sensor_msgs/msg/Image")
    try:
        image = Bag("x.mcap").decode("/t", raw, {**TARGET_ENCODINGS, **COLOUR_ENCODINGS})
    except DataError as exc:
        assert "\n" not in str(exc)
    else:
        assert image.image.shape[:2] == (height, width) and image.stamp_ns == 1_000_000_002
