"""Issue 23, items 10-24: several streams, recordings and numbers as a hostile or unlucky user meets
them. Real ONNX Runtime sessions, real 16-bit PNG/TIFF frames and videos, real files crafted as an
attacker would; a full disk is a file-size limit (RLIMIT_FSIZE), as in test_failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from socket_edge.cli import main
from socket_edge.runtime.outputs import VideoSaver
from test_runtime import depth_frames, linear_onnx, save_pngs

ERROR = "socket-edge: error: "
ROOT = Path(__file__).resolve().parents[1]


def cli(argv: list[str], cwd: Path, max_bytes: int | None = None, stdin=None) -> subprocess.CompletedProcess:
    """The CLI in its own process (FFmpeg writes to the process's stderr, not to Python's), with
    files of at most `max_bytes` (a full disk: writes beyond it fail with EFBIG)."""
    limit = (f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, {max_bytes})); "
             if max_bytes else "")
    code = f"import sys; {limit}from socket_edge.cli import main; sys.exit(main({[str(a) for a in argv]!r}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def one_line(err: str) -> str:
    """The one stderr line of a failure, without the prefix."""
    assert err.count("\n") == 1 and err.startswith(ERROR) and "Traceback" not in err, err
    return err[len(ERROR):].rstrip("\n")


@pytest.fixture(scope="module")
def depth_graph(tmp_path_factory) -> Path:
    return linear_onnx(tmp_path_factory.mktemp("hostile") / "depth.onnx", "depth")


@pytest.fixture(scope="module")
def ir_graph(tmp_path_factory) -> Path:
    return linear_onnx(tmp_path_factory.mktemp("hostile-ir") / "ir.onnx", "ir")


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    """Twelve 16-bit depth PNGs."""
    folder = tmp_path_factory.mktemp("frames") / "frames"
    save_pngs(folder, depth_frames(n=12))
    return folder


# 10. one stream's preprocessing error stops that stream alone, and the summary is printed

def test_a_float_tiff_frame_fails_its_own_stream_and_the_summary_is_printed(depth_graph, frames, tmp_path, capsys):
    tiff = tmp_path / "tiff"
    tiff.mkdir()
    for i, frame in enumerate(depth_frames(n=6)):
        cv2.imwrite(str(tiff / f"{i:04d}.tif"), frame if i < 2 else frame.astype(np.float32))
    assert main(["run", str(depth_graph), "--source", str(frames), "--source", str(tiff), "--json"]) == 1
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in lines if r["stream"] == 0] == list(range(12))
    assert [r["frame"] for r in lines if r["stream"] == 1] == [0, 1]
    assert "14 frames in" in err and "from 2 streams" in err  # the summary
    assert f"  stream 1  2 frames" in err and "failed: " in err
    assert err.splitlines()[-1] == (f"{ERROR}stream 1 ({tiff}) failed: {tiff} frame 2 holds floating-point depth; "
                                    "pass --depth-scale (metres per value, 1 for metres)")


# 11 and 17. --save on a full disk: the first failed write is one line, every writer is closed

def test_save_on_a_full_disk_stops_at_the_first_failed_write_with_one_line(depth_graph, frames, tmp_path):
    out = tmp_path / "out"
    result = cli(["run", depth_graph, "--source", f"{frames}?loop=1", "--max-frames", "3000", "--save",
                  out / "seen.mp4", "-q"], tmp_path, max_bytes=20_000)
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert line.startswith(f"cannot write video {out / 'seen.mp4'} (frame ") and line.endswith(
        "the file would exceed the file-size limit of this process (ulimit -f); nothing was saved under that name: "
        f"free space in {out} or --save elsewhere"), line
    assert int(line.split("(frame ")[1].split(")")[0]) < 3000  # it stopped at the failed write
    assert list(out.iterdir()) == []


def test_save_of_several_streams_on_a_full_disk_prints_the_summary_and_leaves_no_file(depth_graph, frames, tmp_path):
    out = tmp_path / "out"
    result = cli(["run", depth_graph, "--source", f"{frames}?loop=1", "--source", f"{frames}?loop=1",
                  "--max-frames", "3000", "--save", out / "seen.avi", "-q"], tmp_path, max_bytes=20_000)
    err = result.stderr.splitlines()
    assert result.returncode == 1 and "from 2 streams" in err[0], result.stderr
    assert [line for line in err if not line.startswith("  ")][1:] == [err[-1]]  # the summary, then one line
    assert err[-1].startswith(f"{ERROR}cannot write video {out}/seen.s") and "WARN" not in result.stderr
    assert list(out.iterdir()) == []  # both temporary videos removed


class Failing:
    """An output whose close() raises, as a writer on a full disk does."""

    def close(self) -> None:
        raise OSError(28, "No space left on device")


def test_closing_outputs_closes_every_writer_when_one_raises(tmp_path):
    from socket_edge.runtime.outputs import close_all

    saver = VideoSaver(tmp_path / "v.avi", "depth")
    saver.write({"label": "bars", "score": 0.5}, depth_frames(n=1)[0])
    assert saver.tmp.exists()
    with pytest.raises(OSError, match="No space"):
        close_all([Failing(), saver])
    assert saver.writer is None and list(tmp_path.iterdir()) == [tmp_path / "v.avi"]


# 21. FFmpeg never prints before our line

def test_an_rtsp_source_that_does_not_answer_is_our_line_alone(ir_graph, tmp_path):
    result = cli(["run", ir_graph, "--source", "rtsp://127.0.0.1:9/x", "-q"], tmp_path)
    assert result.returncode == 1
    assert one_line(result.stderr) == ("cannot open RTSP stream rtsp://127.0.0.1:9/x (it did not answer); check the "
                                       "address, the network and the camera's credentials, or try ?transport=tcp")
