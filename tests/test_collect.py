"""`socket-edge collect` on real RealSense recordings made by pyrealsense2's software device: a colour
camera and a depth camera (with infrared #1 on its grid) of different resolutions, focal lengths and
a baseline, looking at a box in front of a wall. The written colour frame must show the box exactly
where geometry says the colour camera sees it from each depth pixel."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import needs_realsense
from test_import_rules import run_without_torch
from socket_edge.cli import main
from socket_edge.data.folders import class_folders, ti_pairs, unlabeled_images
from socket_edge.runtime.recording import Lens, recording_suffix, write_recording, write_rgbd_recording

pytestmark = needs_realsense

DEPTH_LENS = Lens(128, 96, 104.0, 100.0, 63.5, 47.5)
COLOUR_LENS = Lens(160, 120, 150.0, 144.0, 80.5, 59.0)
BASELINE = (0.04, 0.005, 0.0)  # the colour camera's place in the depth camera's frame: p_colour = p_depth + t
WALL_M, BOX_M = 2.0, 0.8
DEPTH_SCALE = 0.0001  # the recording's depth unit (0.1 mm): collect writes millimetres
BOX_RGB, WALL_RGB = (230, 200, 60), (40, 60, 90)
BOX_IR, WALL_IR = 210, 50


def box(x: np.ndarray, y: np.ndarray, shift: float) -> np.ndarray:
    """Whether a point of the box plane (depth-camera metres) lies on the box."""
    return (x > -0.16 + shift) & (x < 0.09 + shift) & (y > -0.10) & (y < 0.11)


def rays(lens: Lens) -> tuple[np.ndarray, np.ndarray]:
    """x/z and y/z of every pixel centre of a lens."""
    v, u = np.mgrid[0:lens.height, 0:lens.width].astype(np.float64)
    return (u - lens.ppx) / lens.fx, (v - lens.ppy) / lens.fy


def colour_sees_box(u: np.ndarray, v: np.ndarray, shift: float) -> np.ndarray:
    """Whether the colour camera's ray through pixel (u, v) meets the box (it stands before the wall)."""
    dx, dy = (u - COLOUR_LENS.ppx) / COLOUR_LENS.fx, (v - COLOUR_LENS.ppy) / COLOUR_LENS.fy
    z = BOX_M + BASELINE[2]  # the box plane's depth in the colour camera's frame
    return box(dx * z - BASELINE[0], dy * z - BASELINE[1], shift)


def scene(shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colour RGB, depth in DEPTH_SCALE units, infrared) of the box shifted sideways by `shift` metres."""
    dx, dy = rays(DEPTH_LENS)
    on_box = box(dx * BOX_M, dy * BOX_M, shift)
    depth = np.where(on_box, BOX_M, WALL_M) / DEPTH_SCALE
    infrared = np.where(on_box, BOX_IR, WALL_IR).astype(np.uint8)
    v, u = np.mgrid[0:COLOUR_LENS.height, 0:COLOUR_LENS.width].astype(np.float64)
    colour = np.where(colour_sees_box(u, v, shift)[..., None], BOX_RGB, WALL_RGB).astype(np.uint8)
    return colour, np.rint(depth).astype(np.uint16), infrared


def truth(shift: float = 0.0) -> np.ndarray:
    """Per depth pixel: does the colour camera see the box where this pixel's 3D point projects? On
    the box, yes; beside its edge the depth camera sees the wall but the colour camera the box."""
    dx, dy = rays(DEPTH_LENS)
    z = np.where(box(dx * BOX_M, dy * BOX_M, shift), BOX_M, WALL_M)
    x, y, z = dx * z + BASELINE[0], dy * z + BASELINE[1], z + BASELINE[2]
    u, v = x / z * COLOUR_LENS.fx + COLOUR_LENS.ppx, y / z * COLOUR_LENS.fy + COLOUR_LENS.ppy
    return colour_sees_box(np.rint(u), np.rint(v), shift)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def record(path: Path, shifts: list[float], infrared: bool = False, depth: bool = True) -> Path:
    frames = [scene(s) for s in shifts]
    return write_rgbd_recording(path.with_suffix(recording_suffix()), [f[0] for f in frames],
                                [f[1] for f in frames] if depth else None,
                                [f[2] for f in frames] if infrared else None, colour_lens=COLOUR_LENS,
                                depth_lens=DEPTH_LENS, depth_to_colour=BASELINE, depth_scale=DEPTH_SCALE)


def box_mask(rgb_png: Path) -> np.ndarray:
    """The pixels of a written colour frame that show the box's colour."""
    image = cv2.cvtColor(cv2.imread(str(rgb_png), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB).astype(int)
    return np.abs(image - BOX_RGB).sum(axis=2) < 60


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("collect-recordings")
    shifts = [0.0, 0.0, 0.0, 0.05, 0.05, 0.1]
    return {"rgbd": record(root / "rgbd", shifts), "rgbdi": record(root / "rgbdi", shifts, infrared=True),
            "depth_only": write_recording(root / f"depth_only{recording_suffix()}", [scene()[1]] * 2),
            "colour_ir": record(root / "colour_ir", shifts[:2], infrared=True, depth=False),
            "shifts": shifts}


def collect(*argv: str) -> int:
    return main(["collect", *map(str, argv), "-q"])


def pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def test_ti_pairs_put_the_box_on_the_same_pixels(recordings, tmp_path, capsys):
    out = tmp_path / "ti"
    assert collect(recordings["rgbd"], "--out", out, "--as", "ti", "--class", "hallway") == 0
    names = pngs(out / "depth" / "hallway")
    assert names == pngs(out / "rgb" / "hallway") == [f"{i:06d}.png" for i in range(6)]
    for name, shift in zip(names, recordings["shifts"]):
        depth = cv2.imread(str(out / "depth" / "hallway" / name), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == (DEPTH_LENS.height, DEPTH_LENS.width)
        assert set(np.unique(depth)) == {800, 2000}  # millimetres from the 0.1 mm unit, never resampled
        colour_mask = box_mask(out / "rgb" / "hallway" / name)
        assert colour_mask.shape == depth.shape
        assert iou(colour_mask, truth(shift)) >= 0.95
        band = truth(shift) & (depth == 2000)
        assert band.sum() > 0 and colour_mask[band].mean() > 0.8  # the wall the colour camera cannot see
        resized = cv2.resize(scene(shift)[0], (DEPTH_LENS.width, DEPTH_LENS.height), interpolation=cv2.INTER_NEAREST)
        assert iou(np.abs(resized.astype(int) - BOX_RGB).sum(axis=2) < 60, truth(shift)) < 0.7  # unaligned: fails
    assert "collected 6 pairs: 0 skipped, 0 dropped" in capsys.readouterr().err
    pairs = ti_pairs(out / "rgb", out / "depth")
    assert len(pairs) == 6 and pairs.source.class_names == ("hallway",)


def test_ti_pairs_with_infrared(recordings, tmp_path):
    out = tmp_path / "ti"
    assert collect(recordings["rgbdi"], "--out", out, "--as", "ti", "--class", "hallway", "--stream",
                   "infrared") == 0
    assert not (out / "depth").exists()
    for name, shift in zip(pngs(out / "ir" / "hallway"), recordings["shifts"]):
        infrared = cv2.imread(str(out / "ir" / "hallway" / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(infrared, scene(shift)[2])  # as the stream gave it
        assert iou(box_mask(out / "rgb" / "hallway" / name), truth(shift)) >= 0.95
    assert len(ti_pairs(out / "rgb", out / "ir")) == 6


def test_target_and_eval_layouts_read_as_adapt_and_eval_read_them(recordings, tmp_path):
    target, labelled = tmp_path / "target", tmp_path / "eval"
    assert collect(recordings["rgbd"], "--out", target, "--as", "target") == 0
    assert collect(recordings["rgbd"], "--out", labelled, "--as", "eval", "--class", "blob") == 0
    assert pngs(target) == [f"{i:06d}.png" for i in range(6)] and not (target / "rgb").exists()
    assert len(unlabeled_images(target)) == 6
    images = class_folders(labelled)
    assert images.class_names == ("blob",) and len(images) == 6
    assert cv2.imread(str(images.files[0]), cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.parametrize("options, kept, skipped", [
    (["--every", "2"], 3, 3),  # frames 0, 2, 4
    (["--min-change", "1"], 3, 3),  # the box moves at frames 3 and 5: 0, 3, 5
    (["--max", "2"], 2, 0),
    (["--seconds", "0.09"], 3, 0),  # frames at 0, 33 and 67 ms
])
def test_frame_selection(recordings, tmp_path, capsys, options, kept, skipped):
    out = tmp_path / "target"
    assert collect(recordings["rgbd"], "--out", out, "--as", "target", *options) == 0
    assert len(pngs(out)) == kept
    assert f"collected {kept} frames: {skipped} skipped, 0 dropped" in capsys.readouterr().err


def test_numbering_continues_after_existing_files(recordings, tmp_path, capsys):
    out = tmp_path / "ti"
    for name in ("desk", "desk", "corridor"):
        assert collect(recordings["rgbd"], "--out", out, "--as", "ti", "--class", name, "--max", "2") == 0
    assert pngs(out / "depth" / "desk") == pngs(out / "rgb" / "desk") == [f"{i:06d}.png" for i in range(4)]
    assert pngs(out / "depth" / "corridor") == ["000000.png", "000001.png"]
    assert "holds pairs per class: corridor 2, desk 4" in capsys.readouterr().err.splitlines()[-1]


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("socket-edge: error: "), err
    return err[0]


def test_bad_sources_get_one_line(recordings, tmp_path, capsys):
    out = tmp_path / "out"
    assert collect(recordings["depth_only"], "--out", out, "--as", "target") == 1
    assert "has no colour stream (it has depth)" in one_error(capsys)
    assert collect(recordings["rgbd"], "--out", out, "--as", "target", "--stream", "infrared") == 1
    assert "has no infrared #1 stream (it has" in one_error(capsys)
    assert collect(recordings["colour_ir"], "--out", out, "--as", "target", "--stream", "infrared") == 1
    assert "has no depth stream" in one_error(capsys)
    assert collect(tmp_path / f"missing{recording_suffix()}", "--out", out, "--as", "target") == 1
    assert "does not exist" in one_error(capsys)
    assert not out.exists() or not list(out.rglob("*.png"))


def test_bad_options_get_one_line(recordings, tmp_path, capsys, trained_rgb):
    out = tmp_path / "out"
    assert collect(recordings["rgbd"], "--out", out, "--as", "ti") == 2
    assert "--as ti needs --class NAME" in one_error(capsys)
    assert collect(recordings["rgbd"], "--out", out, "--as", "eval") == 2
    assert "--as eval needs --class NAME" in one_error(capsys)
    assert collect(recordings["rgbd"], "--out", out, "--as", "ti", "--class", "blob", "--model", trained_rgb) == 2
    assert "--class blob is a task class of" in one_error(capsys)
    assert collect(recordings["rgbd"], "--out", out, "--as", "eval", "--class", "desk", "--model", trained_rgb) == 2
    assert "--class desk is not a class of" in one_error(capsys)
    source = f"{recordings['rgbdi']}?stream=infrared"
    assert collect(source, "--out", out, "--as", "target", "--stream", "depth") == 2
    assert f"source {source!r} asks for stream=infrared but --stream is depth; give one of them" in one_error(capsys)
    assert collect(f"{recordings['rgbd']}?width=640", "--out", out, "--as", "target") == 2
    assert "collect takes only ?stream=depth|infrared (it records at the camera's default resolution and rate); " \
           "drop width" in one_error(capsys)
    assert collect(recordings["rgbd"], "--out", out, "--as", "ti", "--class", "desk", "--model", trained_rgb,
                   "--max", "1") == 0


def test_an_output_of_another_modality_is_refused(recordings, tmp_path, capsys):
    ti = tmp_path / "ti"
    assert collect(recordings["rgbdi"], "--out", ti, "--as", "ti", "--class", "desk", "--stream", "infrared") == 0
    capsys.readouterr()
    assert collect(recordings["rgbdi"], "--out", ti, "--as", "ti", "--class", "desk") == 1
    assert "holds ir/ pairs; collect depth pairs into another --out" in one_error(capsys)
    target = tmp_path / "target"  # the stream as `run`'s URI names it, instead of --stream
    assert collect(f"{recordings['rgbdi']}?stream=infrared", "--out", target, "--as", "target") == 0
    capsys.readouterr()
    assert collect(recordings["rgbdi"], "--out", target, "--as", "target") == 1
    assert "000000.png is 8-bit but this depth stream gives 16-bit frames" in one_error(capsys)
    assert len(pngs(target)) == 6


def test_an_output_laid_out_for_another_role_is_refused(recordings, tmp_path, capsys):
    """Issue 23, item 7: --as eval or --as ti into a folder of another role would mix the layouts
    (and adapt would then fail on them); refused in one line, nothing written."""
    ti, evaluation, target = tmp_path / "ti", tmp_path / "eval", tmp_path / "target"
    assert collect(recordings["rgbd"], "--out", ti, "--as", "ti", "--class", "desk", "--max", "2") == 0
    assert collect(recordings["rgbd"], "--out", evaluation, "--as", "eval", "--class", "desk", "--max", "2") == 0
    assert collect(recordings["rgbd"], "--out", target, "--as", "target", "--max", "2") == 0
    capsys.readouterr()
    shapes = {"ti": "rgb/CLASS/ beside depth/CLASS/ or ir/CLASS/", "target": "images directly in it",
              "eval": "CLASS/ folders of images"}
    for out, found in ((ti, "ti"), (evaluation, "eval"), (target, "target")):
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        for role in {"ti", "eval", "target"} - {found}:
            named = ["--class", "chair"] if role != "target" else []
            assert collect(recordings["rgbd"], "--out", out, "--as", role, *named) == 1
            assert one_error(capsys) == (
                f"socket-edge: error: {out} is laid out for --as {found} ({shapes[found]}); --as {role} writes {shapes[role]}: collect "
                "into another --out (one folder, one role)")
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert sorted(p.name for p in evaluation.iterdir()) == ["desk"]


def test_a_recording_cut_short_leaves_complete_files_only(tmp_path, capsys):
    """A file cut in the middle of its bytes is refused in one line; one whose colour stream stops
    early (and misses frames) gives a pair for every complete moment and counts the rest as dropped."""
    frames = 40
    recording = record(tmp_path / "long", [0.002 * i for i in range(frames)])
    cut = recording.with_name("cut" + recording.suffix)
    cut.write_bytes(recording.read_bytes()[:int(recording.stat().st_size * 0.6)])
    out = tmp_path / "ti"
    assert collect(cut, "--out", out, "--as", "ti", "--class", "desk") == 1
    assert "cannot be played as a RealSense recording" in one_error(capsys)
    assert not list(out.rglob("*.png"))
    lost = set(range(10, 15)) | set(range(30, frames))  # colour frames missing mid-stream and at the end
    with closing(sqlite3.connect(recording)) as db, db:
        rows = db.execute("SELECT messages.id FROM messages JOIN topics ON topics.id = messages.topic_id WHERE "
                          "topics.name LIKE '%Color_0/image/data' ORDER BY messages.timestamp").fetchall()
        db.executemany("DELETE FROM messages WHERE id = ?", [rows[i] for i in sorted(lost)])
    assert collect(recording, "--out", out, "--as", "ti", "--class", "desk") == 0
    kept = frames - len(lost)
    assert f"collected {kept} pairs: 0 skipped, {len(lost)} dropped" in capsys.readouterr().err
    names = pngs(out / "depth" / "desk")
    assert names == pngs(out / "rgb" / "desk") and len(names) == kept
    for name in names:
        assert cv2.imread(str(out / "depth" / "desk" / name), cv2.IMREAD_UNCHANGED).shape == (96, 128)
        assert cv2.imread(str(out / "rgb" / "desk" / name), cv2.IMREAD_UNCHANGED).shape == (96, 128, 3)
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix != ".png"]


def test_collect_runs_without_torch(recordings, tmp_path):
    """The device that owns the camera has no training stack; --model reads an .onnx's classes without it."""
    from test_runtime import linear_onnx

    out, model = tmp_path / "target", linear_onnx(tmp_path / "m.onnx", "depth")  # classes bars, blob, ring
    code = f"""
from socket_edge.cli import main
assert main(["collect", {str(recordings["rgbd"])!r}, "--out", {str(out)!r}, "--as", "target", "-q"]) == 0
assert main(["collect", {str(recordings["rgbd"])!r}, "--out", {str(out)!r}, "--as", "ti", "--class", "bars",
             "--model", {str(model)!r}]) == 2
assert "torch" not in sys.modules
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    summary, error = result.stderr.strip().splitlines()
    assert summary.startswith("collected 6 frames") and "--class bars is a task class of" in error
    assert len(pngs(out)) == 6


def test_collected_folders_go_through_adapt_unchanged(recordings, tmp_path, trained_rgb):
    ti, target = tmp_path / "ti", tmp_path / "target"
    for name in ("desk", "corridor"):
        assert collect(recordings["rgbd"], "--out", ti, "--as", "ti", "--class", name, "--model", trained_rgb) == 0
    assert collect(recordings["rgbd"], "--out", target, "--as", "target") == 0
    out = tmp_path / "adapted.pt"
    assert main(["adapt", "-q", "--source", str(trained_rgb), "--target", str(target), "--modality", "depth",
                 "--method", "socket", "--ti-source", str(ti / "rgb"), "--ti-target", str(ti / "depth"),
                 "--epochs", "1", "--batch-size", "4", "--out", str(out)]) == 0
    assert out.is_file()


def test_ctrl_c_keeps_what_was_written_and_prints_the_summary(tmp_path):
    recording = record(tmp_path / "long", [0.0005 * i for i in range(300)])
    out = tmp_path / "ti"
    proc = subprocess.Popen([sys.executable, "-m", "socket_edge.cli", "collect", str(recording), "--out", str(out),
                             "--as", "ti", "--class", "desk"], stderr=subprocess.PIPE, text=True,
                            # Ctrl-C as in a terminal, also where this suite runs as a background job
                            # (which starts with SIGINT ignored, and so would its child)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen, char = "", "?"
    while " kept" not in seen and char:  # the live counter: collecting has begun
        char = proc.stderr.read(1)
        seen += char
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)  # a hang guard only
    assert proc.returncode == 130, err
    assert "pairs (interrupted)" in err and "Traceback" not in err
    names = pngs(out / "depth" / "desk")
    assert names == pngs(out / "rgb" / "desk") and 0 < len(names) < 300
    assert f"holds pairs per class: desk {len(names)}" in err
    for name in names:
        assert cv2.imread(str(out / "rgb" / "desk" / name), cv2.IMREAD_UNCHANGED).shape == (96, 128, 3)


def test_depth_units_become_millimetres_saturating():
    from socket_edge.capture.realsense import depth_to_millimetres

    raw = np.array([[0, 1, 4, 10000, 65535]], np.uint16)
    np.testing.assert_array_equal(depth_to_millimetres(raw, 0.0001), [[0, 1, 1, 1000, 6554]])
    np.testing.assert_array_equal(depth_to_millimetres(raw, 0.002), [[0, 2, 8, 20000, 65535]])


class LateColour:
    """Makes a PairedStream's playback deliver the first colour frames (in their order) only after
    the second depth frame: the order two sensor threads can give on a loaded machine (issue 23, 12)."""

    def __init__(self, stream) -> None:
        import threading

        self.stream, self.deliver = stream, stream._on_frame
        self.held, self.order, self.released = [], [], False
        self.lock = threading.Lock()
        stream._on_frame = self

    def __call__(self, frame) -> None:
        colour = frame.get_profile().stream_type() == self.stream.rs.stream.color
        with self.lock:
            if colour and not self.released:  # colour waits until depth frame 1 has arrived
                frame.keep()
                self.held.append(frame)
                return
        self.deliver(frame)
        with self.lock:
            self.order.append(("colour " if colour else "depth ") + str(frame.get_frame_number()))
            if not colour and not self.released and frame.get_frame_number() == 1:
                self.released = True
                for held in self.held:
                    self.deliver(held)
                    self.order.append(f"colour {held.get_frame_number()}")


def test_a_depth_frame_before_the_colour_of_the_last_one_drops_no_frame(recordings, tmp_path):
    from socket_edge.capture.collect import collect as collect_pairs
    from socket_edge.capture.layout import Layout
    from socket_edge.capture.realsense import PairedStream
    from socket_edge.capture.selection import Selector

    stream = PairedStream(str(recordings["rgbd"]))
    late = LateColour(stream)
    layout = Layout(tmp_path / "ti", "ti", stream.stream, "hallway")
    summary = collect_pairs(stream, layout, Selector(None, None), max_frames=None, seconds=None, progress=False)
    assert late.order[:3] == ["depth 0", "depth 1", "colour 0"], late.order  # the race of the issue
    assert (summary.kept, summary.dropped) == (6, 0)
    assert pngs(tmp_path / "ti" / "depth" / "hallway") == [f"{i:06d}.png" for i in range(6)]
