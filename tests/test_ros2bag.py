"""ROS 2 bags in and out, on real bags written with rosbags (no ROS install): `run` and `collect` read
sensor_msgs/Image topics (16UC1 depth in mm, mono8/mono16 infrared), bad bags get one line each,
and `run --record` writes vision_msgs Classification + LabelInfo that read back, with rosbags and
with the independent mcap reader, as the labels and stamps `run --json` printed. (The readers are
fuzzed in test_ros2bag_fuzz.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_import_rules import run_without_torch
from conftest import pattern
from test_runtime import CLASSES, linear_onnx
from socket_edge.cli import main
from socket_edge.errors import MissingDependencyError, UsageError

rosbag2 = pytest.importorskip("rosbags.rosbag2", reason="the ros2 extra (rosbags) is not installed")

from socket_edge.data.ros2bag import typestore  # noqa: E402
from socket_edge.runtime.uri import parse_source  # noqa: E402

DEPTH = "/camera/camera/depth/image_rect_raw"
IR = "/camera/camera/infra1/image_rect_raw"
COLOUR = "/camera/camera/color/image_raw"
ALIGNED = "/camera/camera/aligned_depth_to_color/image_raw"
T0 = 1_700_000_000_123_456_789  # ns: the stamps keep their nanoseconds through the round trip
PERIOD = 33_333_333
H, W = 48, 64
N = 6
DTYPES = {"16UC1": "<u2", "mono16": "<u2", "mono8": "u1", "rgb8": "u1", "bgr8": "u1", "32FC1": "<f4"}


def image_message(image: np.ndarray, encoding: str, stamp: int, frame_id: str = "camera_optical_frame",
                  big_endian: bool = False):
    types = typestore().types
    dtype = np.dtype(DTYPES[encoding]).newbyteorder(">" if big_endian else "<")
    data = np.ascontiguousarray(image.astype(dtype)).view(np.uint8).reshape(-1)
    height, width = image.shape[:2]
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=frame_id)
    return types["sensor_msgs/msg/Image"](header=header, height=height, width=width, encoding=encoding,
                                          is_bigendian=int(big_endian), step=data.size // height, data=data)


def write_bag(path: Path, topics: dict[str, list], storage: str = "mcap") -> Path:
    """A rosbag2 folder: {topic: [(stamp_ns, message or (msgtype, message))]} written with rosbags."""
    plugin = rosbag2.StoragePlugin.MCAP if storage == "mcap" else rosbag2.StoragePlugin.SQLITE3
    store = typestore()
    with rosbag2.Writer(path, version=8, storage_plugin=plugin) as writer:
        for topic, messages in topics.items():
            msgtype = messages[0][1].__msgtype__
            connection = writer.add_connection(topic, msgtype, typestore=store)
            for stamp, message in messages:
                writer.write(connection, stamp, store.serialize_cdr(message, msgtype))
    return path


def depth_frames(n: int = N) -> list[np.ndarray]:
    """Depth in millimetres with the run tests' class patterns and some invalid (0) pixels."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        img = pattern(i % len(CLASSES), W, rng)[:H]
        depth = (400 + img * 2500).astype(np.uint16)
        depth[rng.random(depth.shape) < 0.03] = 0
        frames.append(depth)
    return frames


def ir_frames(encoding: str, n: int = N) -> list[np.ndarray]:
    frames = [np.clip(d.astype(np.float32) / 3000 * 255, 0, 255).astype(np.uint8) for d in depth_frames(n)]
    return [f.astype(np.uint16) * 257 for f in frames] if encoding == "mono16" else frames


def bag_of(path: Path, topic: str, encoding: str, frames: list[np.ndarray], storage: str = "mcap",
           big_endian: bool = False) -> Path:
    stamps = [T0 + i * PERIOD for i in range(len(frames))]
    return write_bag(path, {topic: [(t, image_message(f, encoding, t, big_endian=big_endian))
                                    for t, f in zip(stamps, frames)]}, storage)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ros2-models")
    return {"depth": linear_onnx(root / "depth.onnx", "depth"), "ir": linear_onnx(root / "ir.onnx", "ir")}


def run_json(capsys, model: Path, *argv) -> tuple[int, list[dict], str]:
    capsys.readouterr()
    code = main(["run", str(model), *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def write_pngs(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    return folder


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_depth_16uc1_gives_the_scores_of_the_same_frames_as_png(models, tmp_path, capsys, storage):
    frames = depth_frames()
    bag = bag_of(tmp_path / "bag", DEPTH, "16UC1", frames, storage)
    code, from_bag, _ = run_json(capsys, models["depth"], "--source", f"ros2bag://{bag}?topic={DEPTH}")
    assert code == 0
    code, from_png, _ = run_json(capsys, models["depth"], "--source", write_pngs(tmp_path / "png", frames))
    assert code == 0 and len(from_bag) == N
    assert [r["label"] for r in from_bag] == [r["label"] for r in from_png]
    assert [r["score"] for r in from_bag] == pytest.approx([r["score"] for r in from_png], abs=1e-6)
    assert len({r["label"] for r in from_bag}) > 1  # the frames move the model
    stamps = [r["header"]["stamp"]["sec"] * 10**9 + r["header"]["stamp"]["nanosec"] for r in from_bag]
    assert stamps == [T0 + i * PERIOD for i in range(N)]
    assert {r["header"]["frame_id"] for r in from_bag} == {"camera_optical_frame"}


@pytest.mark.parametrize("encoding,big_endian", [("mono8", False), ("mono16", False), ("mono16", True)])
def test_infrared_mono8_and_mono16(models, tmp_path, capsys, encoding, big_endian):
    from socket_edge.runtime.sources import Ros2BagSource

    frames = ir_frames(encoding)
    bag = bag_of(tmp_path / "bag", IR, encoding, frames, big_endian=big_endian)
    source = Ros2BagSource(parse_source(f"ros2bag://{bag}?topic={IR}"))
    source.open()
    read = [source.read() for _ in range(N)]
    assert source.read() is None and source.recorded == N and source.modality == "ir"
    source.close()
    for frame, expected in zip(read, frames):
        assert frame.image.dtype == expected.dtype and np.array_equal(frame.image, expected)
    code, from_bag, _ = run_json(capsys, models["ir"], "--source", f"ros2bag://{bag}?topic={IR}")
    pngs = write_pngs(tmp_path / "png", frames)  # 16-bit PNGs would be sniffed as depth: say what they are
    code_png, from_png, _ = run_json(capsys, models["ir"], "--source", f"{pngs}?modality=ir")
    assert code == code_png == 0
    assert [r["score"] for r in from_bag] == pytest.approx([r["score"] for r in from_png], abs=1e-6)


def one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    assert len(err) == 1, err
    assert err[0].startswith("socket-edge: error: ")
    return err[0]


@pytest.mark.parametrize("encoding,found", [("rgb8", "encoding 'rgb8'"),
                                            ("32FC1", "32FC1 depth (metres) is not supported")])
def test_wrong_encodings_get_one_line(models, tmp_path, capsys, encoding, found):
    frames = [np.dstack([f % 256] * 3) for f in depth_frames(2)] if encoding == "rgb8" else \
        [f.astype(np.float32) / 1000 for f in depth_frames(2)]
    bag = bag_of(tmp_path / "bag", DEPTH, encoding, frames)
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{bag}?topic={DEPTH}"]) == 1
    line = one_error(capsys)
    assert found in line and "16UC1 (depth, mm), mono16 (infrared), mono8 (infrared)" in line


def test_missing_topic_lists_the_topics_present(models, tmp_path, capsys):
    bag = bag_of(tmp_path / "bag", DEPTH, "16UC1", depth_frames(1))
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{bag}?topic=/camera/depth"]) == 1
    line = one_error(capsys)
    assert f"has no topic /camera/depth; it has {DEPTH} (sensor_msgs/msg/Image)" in line


def test_compressed_images_and_other_types_are_refused(models, tmp_path, capsys):
    types = typestore().types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c")
    compressed = types["sensor_msgs/msg/CompressedImage"](header=header, format="png", data=np.zeros(4, np.uint8))
    bag = write_bag(tmp_path / "bag", {"/c/compressed": [(1, compressed)]})
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{bag}?topic=/c/compressed"]) == 1
    assert "is sensor_msgs/msg/CompressedImage, which socket-edge does not read yet" in one_error(capsys)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_gets_one_line(models, tmp_path, capsys, storage):
    bag = bag_of(tmp_path / "bag", DEPTH, "16UC1", depth_frames(), storage)
    file = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    cut = tmp_path / f"cut{file.suffix}"
    cut.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{cut}?topic={DEPTH}",
                 "--record", str(tmp_path / "out.mcap")]) == 1
    assert f"ROS 2 bag {cut} is truncated or damaged" in one_error(capsys)
    assert not list(tmp_path.glob("*out.mcap*"))


def test_bad_uris_and_missing_bags(models, tmp_path, capsys):
    with pytest.raises(UsageError, match="ros2bag://PATH\\?topic="):
        parse_source(f"ros2bag://{tmp_path}/bag")
    with pytest.raises(UsageError, match="take no option colour_topic"):
        parse_source(f"ros2bag://{tmp_path}/bag?topic=/a&colour_topic=/b")
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{tmp_path}/none?topic={DEPTH}"]) == 1
    assert "does not exist" in one_error(capsys)
    (tmp_path / "folder").mkdir()
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{tmp_path}/folder?topic={DEPTH}"]) == 1
    assert "without metadata.yaml" in one_error(capsys)


def read_classifications(path: Path) -> tuple[list, dict[str, list]]:
    """(LabelInfo messages, {topic: Classification messages}) of a bag, read with rosbags."""
    labels, results = [], {}
    with rosbag2.Reader(path) as reader:
        for connection, _, raw in reader.messages():
            message = typestore().deserialize_cdr(raw, connection.msgtype)
            if connection.msgtype == "vision_msgs/msg/LabelInfo":
                labels.append(message)
            else:
                assert connection.msgtype == "vision_msgs/msg/Classification"
                results.setdefault(connection.topic, []).append(message)
    return labels, results


def test_round_trip_run_record_reads_back_as_run_json(models, tmp_path, capsys):
    """A bag written, `run --record out.mcap --json` on it, the output read back: the same frames,
    labels, scores and header stamps as the JSON lines; an independent reader (mcap) agrees."""
    bag = bag_of(tmp_path / "bag", DEPTH, "16UC1", depth_frames())
    out = tmp_path / "out.mcap"
    code, printed, err = run_json(capsys, models["depth"], "--source", f"ros2bag://{bag}?topic={DEPTH}",
                                  "--record", out)
    assert code == 0 and f"ROS 2 bag: {out} ({N + 1} messages)" in err
    labels, results = read_classifications(out)
    assert len(labels) == 1 and [(c.class_id, c.class_name) for c in labels[0].class_map] == list(enumerate(CLASSES))
    names = {str(c.class_id): c.class_name for c in labels[0].class_map}
    assert list(results) == ["/socket_edge/stream0/classification"]
    back = results["/socket_edge/stream0/classification"]
    assert len(back) == len(printed) == N
    assert [names[m.results[0].class_id] for m in back] == [r["label"] for r in printed]
    assert [[names[h.class_id] for h in m.results] for m in back] == [[k["label"] for k in r["top_k"]] for r in printed]
    assert [m.results[0].score for m in back] == [r["score"] for r in printed]
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in back] == \
        [(r["header"]["stamp"]["sec"], r["header"]["stamp"]["nanosec"]) for r in printed] == \
        [divmod(T0 + i * PERIOD, 10**9) for i in range(N)]
    assert {m.header.frame_id for m in back} == {"camera_optical_frame"}

    mcap_reader = pytest.importorskip("mcap.reader", reason="the dev extra (mcap-ros2-support) is not installed")
    from mcap_ros2.decoder import DecoderFactory

    with out.open("rb") as f:
        reader = mcap_reader.make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        decoded = [(channel.topic, schema.name, message.log_time, msg)
                   for schema, channel, message, msg in reader.iter_decoded_messages()]
    assert [d[1] for d in decoded] == ["vision_msgs/msg/LabelInfo"] + ["vision_msgs/msg/Classification"] * N
    assert [names[str(d[3].results[0].class_id)] for d in decoded[1:]] == [r["label"] for r in printed]
    assert [d[2] for d in decoded[1:]] == [T0 + i * PERIOD for i in range(N)]


def test_record_folder_form_several_streams_and_no_overwrite(models, tmp_path, capsys):
    """OUT without a suffix is a rosbag2 folder; a second source (image files) gets its own topic with
    its frame time and a frame_id naming the stream; an existing output is kept without --overwrite."""
    bag = bag_of(tmp_path / "bag", DEPTH, "16UC1", depth_frames())
    pngs = write_pngs(tmp_path / "png", depth_frames(3))
    out = tmp_path / "results"
    code, printed, _ = run_json(capsys, models["depth"], "--source", f"ros2bag://{bag}?topic={DEPTH}",
                                "--source", pngs, "--record", out)
    assert code == 0 and (out / "metadata.yaml").is_file() and (out / "results.mcap").is_file()
    _, results = read_classifications(out)
    assert {topic: len(messages) for topic, messages in results.items()} == \
        {"/socket_edge/stream0/classification": N, "/socket_edge/stream1/classification": 3}
    second = results["/socket_edge/stream1/classification"]
    assert {m.header.frame_id for m in second} == {"socket_edge_stream1"}
    assert [m.header.stamp.sec + m.header.stamp.nanosec / 1e9 for m in second] == \
        pytest.approx([r["timestamp"] for r in printed if r["stream"] == 1], abs=1e-6)

    file = tmp_path / "out.mcap"
    file.write_bytes(b"mine")
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{bag}?topic={DEPTH}", "-q",
                 "--record", str(file)]) == 2
    assert "already exists; pass --overwrite" in one_error(capsys)
    assert file.read_bytes() == b"mine"
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{bag}?topic={DEPTH}", "-q",
                 "--record", str(out), "--overwrite"]) == 2
    assert "existing folder" in one_error(capsys)
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{bag}?topic={DEPTH}", "-q",
                 "--record", str(tmp_path / "out.db3")]) == 2
    assert "name an .mcap file" in one_error(capsys)


def test_a_run_that_fails_midway_records_nothing(models, tmp_path, capsys):
    """The third image changes encoding: one line, exit 1, no bag and no temporary folder left."""
    frames = depth_frames(4)
    messages = [(T0 + i * PERIOD, image_message(f if i != 2 else (f % 256).astype(np.uint8),
                                                "16UC1" if i != 2 else "mono8", T0 + i * PERIOD))
                for i, f in enumerate(frames)]
    bag = write_bag(tmp_path / "bag", {DEPTH: messages})
    out = tmp_path / "out" / "out.mcap"
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{bag}?topic={DEPTH}", "-q",
                 "--record", str(out)]) == 1
    assert "changes encoding from 16UC1 to mono8" in one_error(capsys)
    assert [p.name for p in out.parent.iterdir()] == []


def test_missing_extra_names_it(models, tmp_path, monkeypatch):
    from socket_edge.runtime.ros2_record import ClassificationBag

    monkeypatch.setitem(__import__("sys").modules, "rosbags.rosbag2", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'socket-edge\[ros2\]'"):
        ClassificationBag(tmp_path / "out.mcap", CLASSES)


def test_bag_modules_import_without_torch():
    result = run_without_torch("""
import socket_edge.data.ros2bag, socket_edge.runtime.ros2_record, socket_edge.capture.ros2bag
socket_edge.data.ros2bag.typestore()
assert "torch" not in sys.modules
print("ok")
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def rgbd_bag(path: Path, n: int = 5, skip_colour: int | None = None, offset_ns: int = 0) -> tuple[Path, list, list]:
    """Colour (bgr8) and depth aligned to it (16UC1), same stamps (+ offset_ns on colour); the colour
    image of `skip_colour` missing."""
    rng = np.random.default_rng(1)
    colours = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]
    depths = depth_frames(n)
    colour_messages = [(T0 + i * PERIOD + offset_ns, image_message(c[..., ::-1], "bgr8", T0 + i * PERIOD + offset_ns))
                       for i, c in enumerate(colours) if i != skip_colour]
    depth_messages = [(T0 + i * PERIOD, image_message(d, "16UC1", T0 + i * PERIOD)) for i, d in enumerate(depths)]
    return write_bag(path, {COLOUR: colour_messages, ALIGNED: depth_messages}), colours, depths


def test_collect_ti_pairs_by_header_stamp(tmp_path, capsys):
    bag, colours, depths = rgbd_bag(tmp_path / "bag", skip_colour=2)
    out = tmp_path / "ti"
    source = f"ros2bag://{bag}?topic={ALIGNED}&colour_topic={COLOUR}"
    assert main(["collect", source, "--out", str(out), "--as", "ti", "--class", "hall", "-q"]) == 0
    err = capsys.readouterr().err
    assert "collected 4 pairs: 0 skipped, 1 dropped" in err
    assert "1 of 5 depth images of" in err and "found no colour image with the same stamp" in err
    kept = [0, 1, 3, 4]
    for number, index in enumerate(kept):
        rgb = cv2.cvtColor(cv2.imread(str(out / "rgb" / "hall" / f"{number:06d}.png")), cv2.COLOR_BGR2RGB)
        depth = cv2.imread(str(out / "depth" / "hall" / f"{number:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(rgb, colours[index]) and depth.dtype == np.uint16 and np.array_equal(depth, depths[index])


def test_collect_pairs_within_a_tolerance_and_refuses_unpaired_ti(tmp_path, capsys):
    bag, _, _ = rgbd_bag(tmp_path / "bag", offset_ns=4_000_000)  # colour stamped 4 ms after depth
    source = f"ros2bag://{bag}?topic={ALIGNED}&colour_topic={COLOUR}"
    assert main(["collect", source, "--out", str(tmp_path / "exact"), "--as", "ti", "--class", "a", "-q"]) == 0
    assert "collected 0 pairs: 0 skipped, 5 dropped" in capsys.readouterr().err
    assert main(["collect", source + "&tolerance_ms=5", "--out", str(tmp_path / "near"), "--as", "ti", "--class", "a",
                 "-q"]) == 0
    assert "collected 5 pairs: 0 skipped, 0 dropped" in capsys.readouterr().err
    assert main(["collect", f"ros2bag://{bag}?topic={ALIGNED}", "--out", str(tmp_path / "x"), "--as", "ti",
                 "--class", "a", "-q"]) == 2
    assert "--as ti needs colour + depth pairs: add &colour_topic=" in one_error(capsys)
    assert main(["collect", f"ros2bag://{bag}?topic={ALIGNED}", "--out", str(tmp_path / "target"), "--as", "target",
                 "-q"]) == 0
    assert len(list((tmp_path / "target").glob("*.png"))) == 5
    assert "collected 5 frames" in capsys.readouterr().err
    assert main(["collect", source, "--stream", "infrared", "--out", str(tmp_path / "y"), "--as", "ti", "--class",
                 "a", "-q"]) == 2
    assert "holds depth images (16UC1) but --stream is infrared" in one_error(capsys)


def test_collect_refuses_pairs_of_different_sizes(tmp_path, capsys):
    colour = image_message(np.zeros((H * 2, W * 2, 3), np.uint8), "rgb8", T0)
    depth = image_message(depth_frames(1)[0], "16UC1", T0)
    bag = write_bag(tmp_path / "bag", {COLOUR: [(T0, colour)], DEPTH: [(T0, depth)]})
    assert main(["collect", f"ros2bag://{bag}?topic={DEPTH}&colour_topic={COLOUR}", "--out", str(tmp_path / "ti"),
                 "--as", "ti", "--class", "a", "-q"]) == 1
    assert "align_depth.enable:=true" in one_error(capsys)
    assert not list((tmp_path / "ti").rglob("*.png"))


def test_a_bag_that_holds_fewer_images_than_its_metadata_says_records_nothing(models, tmp_path, capsys):
    bag = bag_of(tmp_path / "bag", DEPTH, "16UC1", depth_frames(3))
    meta = bag / "metadata.yaml"
    meta.write_text(meta.read_text().replace("message_count: 3", "message_count: 5"))
    out = tmp_path / "out.mcap"
    assert main(["run", str(models["depth"]), "--source", f"ros2bag://{bag}?topic={DEPTH}", "-q",
                 "--record", str(out)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "read 3 of 5 frames" in line and f"nothing was written to {out}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]
