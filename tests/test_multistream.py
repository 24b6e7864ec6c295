"""Several sources through one batched model (runtime.multistream), and the Jetson/network URIs
(csi://, rtsp://): real 16-bit FFV1 videos and PNG folders, real ONNX Runtime sessions, and a real
RTSP stream from Debian's ffmpeg where it is installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from socket_edge.backends import open_model
from socket_edge.cli import main
from socket_edge.errors import DataError, UsageError
from socket_edge.runtime import pipeline
from socket_edge.runtime.csi_rtsp import csi_pipeline, gstreamer_in_opencv
from socket_edge.runtime.multistream import run_streams
from socket_edge.runtime.recording import write_depth_video
from socket_edge.runtime.sources import Frame, ImageSource, open_source
from socket_edge.runtime.uri import parse_source
from test_runtime import depth_frames, linear_onnx, run_cli, save_pngs


class Counting:
    """The real model, with the batch size of every predict call recorded."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict(self, raw: np.ndarray, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        self.calls.append(len(raw))
        return self.model.predict(raw, batch_size, progress)


@pytest.fixture(scope="session")
def graphs(tmp_path_factory) -> dict[str, Path]:
    """Pixel-sensitive linear graphs: depth with a dynamic batch axis, the same with a fixed batch of 1, ir."""
    root = tmp_path_factory.mktemp("multistream-models")
    dynamic = linear_onnx(root / "depth.onnx", "depth")
    fixed = onnx.load(dynamic)
    for value in (*fixed.graph.input, *fixed.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(fixed, root / "depth-batch1.onnx")
    return {"depth": dynamic, "depth1": root / "depth-batch1.onnx", "ir": linear_onnx(root / "ir.onnx", "ir")}


@pytest.fixture()
def two_sources(tmp_path) -> tuple[str, str]:
    """A 12-frame 16-bit FFV1 video and a 5-frame 16-bit PNG folder of other scenes."""
    video = write_depth_video(tmp_path / "a.mkv", depth_frames(0.001, 12))
    save_pngs(tmp_path / "b", depth_frames(0.001, 8)[3:])
    return str(video), str(tmp_path / "b")


def by_stream(lines: list[dict], stream: int) -> list[dict]:
    return [r for r in lines if r["stream"] == stream]


def test_two_streams_of_different_lengths_each_get_all_their_frames(graphs, two_sources, tmp_path, capsys):
    video, folder = two_sources
    alone = [run_cli([graphs["depth"], "--source", s], capsys)[1] for s in (video, folder)]
    assert {r["stream"] for r in alone[0]} == {0}  # one source: stream 0, the lines as before otherwise
    code, lines, err = run_cli([graphs["depth"], "--source", video, "--source", folder,
                                "--save", tmp_path / "out" / "ann.mp4"], capsys)
    assert code == 0, err
    for stream, expected in enumerate(alone):
        mine = by_stream(lines, stream)
        assert [r["frame"] for r in mine] == list(range(len(expected)))
        assert [(r["label"], r["score"]) for r in mine] == [(r["label"], r["score"]) for r in expected]
    assert "17 frames" in err and "from 2 streams" in err
    assert "stream 0  12 frames" in err and "stream 1  5 frames" in err and "dropped 0, reopened 0" in err
    assert "latency" in err and "p95" in err
    assert main(["run", str(graphs["depth"]), "--source", video, "--source", folder, "--max-frames", "2"]) == 0
    text = capsys.readouterr().out.splitlines()  # without --json: each line names its stream; 2 frames each
    assert sorted(line.split()[:4] for line in text) == [["stream", s, "frame", f] for s in "01" for f in "01"]
    saved = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert saved == ["ann.s0.mp4", "ann.s1.mp4"]
    assert [int(cv2.VideoCapture(str(tmp_path / "out" / n)).get(cv2.CAP_PROP_FRAME_COUNT)) for n in saved] == [12, 5]


def test_one_model_call_per_tick_over_the_ready_streams(graphs, two_sources):
    video, folder = two_sources
    model = Counting(open_model(graphs["depth"], threads=1))
    specs = [parse_source(video), parse_source(folder)]
    summary = run_streams(model, specs, [[], []], gather_s=2.0)  # a tick waits for both (files: no stall)
    assert model.calls == [2] * 5 + [1] * 7  # both streams in one call until the folder ends
    assert summary.batches == model.calls and summary.frames == 17
    assert [s.frames for s in summary.streams] == [12, 5] and not summary.problems
    single = Counting(open_model(graphs["depth"], threads=1))
    baseline = run_streams(single, specs, [[], []], max_batch=1, gather_s=2.0)  # the benchmark's one at a time
    assert baseline.batches == [1] * 17 and [s.frames for s in baseline.streams] == [12, 5]


def test_a_fixed_batch_1_graph_runs_two_streams_in_chunks(graphs, two_sources):
    video, folder = two_sources
    specs = [parse_source(video), parse_source(folder)]
    warnings: list[str] = []
    dynamic = run_streams(open_model(graphs["depth"], threads=1), specs, [[], []], warn=warnings.append, gather_s=2.0)
    assert not warnings
    fixed_model = open_model(graphs["depth1"], threads=1)
    assert fixed_model.fixed_batch == 1
    fixed = run_streams(fixed_model, specs, [[], []], warn=warnings.append, gather_s=2.0)
    assert len(warnings) == 1 and "fixed batch of 1" in warnings[0] and "2 model calls per tick" in warnings[0]
    assert fixed.batches == [1] * 17 and [s.frames for s in fixed.streams] == [12, 5]
    assert dynamic.batches == [2] * 5 + [1] * 7


class DyingSource(ImageSource):
    """A source whose driver fails for good after `fail_at` frames (not a loss that a reopen mends)."""

    def __init__(self, spec, fail_at: int) -> None:
        super().__init__(spec)
        self.fail_at = fail_at

    def read(self) -> Frame | None:
        if self.count == self.fail_at:
            raise DataError("camera 2 driver error")
        return super().read()


def test_a_failing_stream_does_not_stop_the_others(graphs, two_sources, tmp_path, capsys):
    video, folder = two_sources
    (tmp_path / "corrupt.mkv").write_bytes(b"not a video" * 100)
    code, lines, err = run_cli([graphs["depth"], "--source", tmp_path / "missing.mkv", "--source", video,
                                "--source", tmp_path / "corrupt.mkv"], capsys)
    assert code == 1  # a stream failed
    assert [r["frame"] for r in lines] == list(range(12)) and {r["stream"] for r in lines} == {1}
    assert "stream 0 (" in err and "missing.mkv does not exist" in err and "cannot open video file" in err
    assert "Traceback" not in err and err.count("socket-edge: error:") == 2
    specs = [parse_source(video), parse_source(folder)]
    warnings: list[str] = []
    summary = run_streams(open_model(graphs["depth"], threads=1), specs, [[], []], warn=warnings.append,
                          sources=[open_source(specs[0], "depth"), DyingSource(specs[1], fail_at=3)])
    assert [s.frames for s in summary.streams] == [12, 3]
    assert summary.streams[1].failed == "camera 2 driver error" and summary.streams[0].failed is None
    assert len(summary.problems) == 1 and "driver error; the other streams go on" in warnings[0]
    # every stream failing is the one line of the first, as for one source
    code, lines, err = run_cli([graphs["depth"], "--source", tmp_path / "missing.mkv", "--source",
                                tmp_path / "corrupt.mkv"], capsys)
    assert code == 1 and not lines and err.count("\n") == 1 and "does not exist" in err


def test_a_stream_the_model_was_not_made_for_refuses_the_run(graphs, two_sources, tmp_path, capsys):
    video, _ = two_sources
    (tmp_path / "ir").mkdir()
    cv2.imwrite(str(tmp_path / "ir" / "a.png"), np.zeros((48, 64), np.uint8))
    code, lines, err = run_cli([graphs["depth"], "--source", video, "--source", tmp_path / "ir"], capsys)
    assert code == 1 and not lines and err.count("\n") == 1 and "expects depth" in err
    code, lines, err = run_cli([graphs["depth"], "--source", video, "--source", "rtsp://127.0.0.1:9/x"], capsys)
    assert code == 1 and not lines and err.count("\n") == 1 and "8-bit video" in err and "IR or RGB" in err


def test_bench_with_several_sources_reports_batched_and_one_at_a_time(graphs, two_sources, capsys):
    video, _ = two_sources
    assert main(["bench", str(graphs["depth"]), "--source", video, "--source", video, "--frames", "6",
                 "--threads", "1", "--providers", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "2 streams, speedup of batching" in out
    assert "batched        12 frames" in out and "6 model calls (mean batch 2.00)" in out
    assert "one at a time  12 frames" in out and "12 model calls (mean batch 1.00)" in out


def test_csi_and_rtsp_uris(tmp_path, capsys):
    csi = parse_source("csi://1?width=640&height=480&fps=60&modality=ir")
    assert (csi.kind, csi.target, csi.width, csi.height, csi.fps, csi.live) == ("csi", "1", 640, 480, 60, True)
    assert parse_source("csi://0").width == 1280 and "sensor-id=0" in csi_pipeline(parse_source("csi://0"))
    assert "width=(int)640, height=(int)480" in csi_pipeline(csi)
    assert csi_pipeline(csi).endswith("appsink drop=true max-buffers=1")
    cam = parse_source("rtsp://user:pw@cam:554/live?channel=1&transport=tcp&modality=rgb")
    assert (cam.kind, cam.target, cam.transport, cam.modality, cam.live) == (
        "rtsp", "rtsp://user:pw@cam:554/live?channel=1", "tcp", "rgb", True)  # the camera's own query stays
    for bad in ("csi://front", "csi://0?modality=depth", "rtsp://cam/x?transport=quic", "csi://0?loop=1"):
        with pytest.raises(UsageError):
            parse_source(bad)
    if gstreamer_in_opencv():
        pytest.skip("this OpenCV has GStreamer: csi:// would try the camera")
    model = linear_onnx(tmp_path / "ir.onnx", "ir")
    code, lines, err = run_cli([model, "--source", "csi://0"], capsys)
    assert code == 1 and not lines and err.count("\n") == 1 and "Traceback" not in err
    assert "needs OpenCV built with GStreamer" in err and "nvidia-opencv" in err and "--system-site-packages" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish(url: str, seconds: float, rounds: int, stop: threading.Event) -> None:
    """Push `rounds` RTSP sessions of `seconds` of a 64×48 test pattern to `url`, each retried until
    the listener takes it (ffmpeg exits at once while nobody listens)."""
    for _ in range(rounds):
        while not stop.is_set():
            started = time.monotonic()
            subprocess.run(["ffmpeg", "-loglevel", "quiet", "-re", "-f", "lavfi", "-i",
                            f"testsrc=size=64x48:rate=30:duration={seconds}", "-c:v", "mpeg4", "-f", "rtsp", url],
                           stdin=subprocess.DEVNULL, timeout=seconds + 20)
            if time.monotonic() - started > seconds / 2:
                break
            time.sleep(0.1)
        time.sleep(0.3)


def ffmpeg_problem() -> str | None:
    """Why no local RTSP publisher can run here: ffmpeg absent, or present but unable to start
    (Debian's links libusb-1.0 through libavdevice)."""
    if shutil.which("ffmpeg") is None:
        return "ffmpeg is not installed (Debian: apt-get install ffmpeg), so no local RTSP publisher"
    done = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True)
    if done.returncode != 0:
        return f"ffmpeg cannot start ({(done.stderr.strip().splitlines() or ['?'])[-1]}), so no local RTSP publisher"
    return None


@pytest.mark.skipif(ffmpeg_problem() is not None, reason=str(ffmpeg_problem()))
@pytest.mark.timeout(90)
def test_rtsp_frames_arrive_and_the_stream_is_reopened_after_the_publisher_restarts(graphs):
    """socket-edge listens (?listen=1) and ffmpeg pushes: no RTSP server is needed. The publisher
    stops after 1.5 s (~45 frames) and comes back; the run needs frames from both sessions."""
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    stop = threading.Event()
    publisher = threading.Thread(target=publish, args=(url, 1.5, 2, stop), daemon=True)
    publisher.start()
    warnings: list[str] = []
    try:
        summary = pipeline.run(open_model(graphs["ir"], threads=1), parse_source(f"{url}?listen=1"), [],
                               max_frames=60, backoff_s=0.05, warn=warnings.append)
    finally:
        stop.set()
        publisher.join(timeout=30)
    assert summary.frames == 60 and summary.reopens >= 1
    assert "RTSP stream" in warnings[0] and "delivered no frame; reopening" in warnings[0]
    assert warnings[-1].endswith("source reopened; continuing")
