"""`socket-edge run` and `bench` without hardware: real RealSense recordings (software device +
recorder, played back), 16-bit FFV1 videos, PNG sequences, a camera that disappears, Ctrl-C.
The labels `run` prints equal eval's labels on the same frames saved as files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from conftest import needs_realsense, pattern
from test_import_rules import run_without_torch
from socket_edge.backends import open_model
from socket_edge.backends.onnx import OnnxModel
from socket_edge.cli import main
from socket_edge.contract import InputContract
from socket_edge.data.loading import load_frames
from socket_edge.errors import UsageError
from socket_edge.export import exporter
from socket_edge.modelfile import BatchSpec, ModelInfo
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.zoo import ModelConfig, build
from socket_edge.runtime import pipeline
from socket_edge.runtime.bench import bench
from socket_edge.runtime.capture import END, Capture
from socket_edge.runtime.recording import write_depth_video
from socket_edge.runtime.sources import Frame, ImageSource, Source, SourceLost
from socket_edge.runtime.uri import parse_source

CLASSES = ("bars", "blob", "ring")
H, W = 48, 64
N = 12
REC_SCALE = 0.0001  # the recording's depth unit: 0.1 mm, converted to the model's millimetres


def linear_onnx(path: Path, modality: str) -> Path:
    """A socket-edge graph that is one random linear layer over every raw pixel (softmax of
    W·raw·scale): every pixel moves the scores, so equal scores mean equal preprocessing."""
    contract = InputContract.for_modality(modality, CLASSES, 32)
    size = int(np.prod(contract.input_shape))
    weights = np.random.default_rng(0).normal(0, 0.1, (size, len(CLASSES))).astype(np.float32)
    weights -= weights.mean(axis=0)  # no bias from the mean depth: the pattern decides
    scale = np.float32(1e-4 if modality == "depth" else 1 / 2550)
    nodes = [helper.make_node("Flatten", ["raw"], ["flat"]), helper.make_node("Mul", ["flat", "scale"], ["x"]),
             helper.make_node("MatMul", ["x", "w"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"])]
    graph = helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT, ["N", *contract.input_shape])],
        [helper.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, ["N", len(CLASSES)])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.array(scale), "scale")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    info = ModelInfo(contract, (1.0,), (), {}, "linear", "fp32", BatchSpec())
    helper.set_model_props(model, info.to_props())
    onnx.save(model, path)
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Pixel-sensitive linear graphs (depth, ir) and a real exported network with its .pt (depth-net)."""
    root = tmp_path_factory.mktemp("runtime-models")
    torch.manual_seed(1)
    member = build(ModelConfig("resnet18", len(CLASSES)))
    net = Ensemble(InputContract.for_modality("depth", CLASSES, 32), [member], [1.0]).eval()
    exporter.export(artifact.save(net, root / "net.pt", "source", {}))
    return {"depth": linear_onnx(root / "depth.onnx", "depth"), "ir": linear_onnx(root / "ir.onnx", "ir"),
            "net": root / "net.onnx"}


def depth_frames(unit: float = 0.001, n: int = N) -> list[np.ndarray]:
    """Depth scenes 0.5–4.5 m in `unit` metres per value, with holes."""
    rng = np.random.default_rng(3)
    frames = []
    for i in range(n):
        metres = 0.5 + 4.0 * (1 - pattern(i % 3, W, rng)[:H])
        frame = np.round(metres / unit).astype(np.uint16)
        frame[rng.random(frame.shape) < 0.03] = 0
        frames.append(frame)
    return frames


@pytest.fixture(scope="session")
def recording(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A real RealSense recording (use it from a test marked needs_realsense)."""
    from socket_edge.runtime.recording import recording_suffix, write_recording

    depth = depth_frames(REC_SCALE)
    infrared = [(pattern(i % 3, W, np.random.default_rng(i))[:H] * 255).astype(np.uint8) for i in range(N)]
    path = tmp_path_factory.mktemp("rec") / f"scene{recording_suffix()}"
    return write_recording(path, depth, infrared, depth_scale=REC_SCALE), depth


def run_cli(args: list[str], capsys) -> tuple[int, list[dict], str]:
    code = main(["run", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def eval_labels(model: Path, files: list[Path], source_unit: float | None) -> list[tuple[str, float]]:
    """(label, score) per file through eval's own path: open_model + load_frames (read_image + prepare)."""
    runner = open_model(model)
    probs = runner.predict(load_frames(files, runner.contract, source_unit=source_unit, progress=False), 64, False)
    return [(CLASSES[i], round(float(p[i]), 4)) for p, i in zip(probs, probs.argmax(1))]


def labels_of(lines: list[dict]) -> list[tuple[str, float]]:
    return [(r["label"], round(r["score"], 4)) for r in lines]


def save_pngs(folder: Path, frames: list[np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{i:04d}.png" for i in range(len(frames))]
    for path, frame in zip(files, frames):
        cv2.imwrite(str(path), frame)
    return files


def test_uri_parser(tmp_path):
    live = parse_source("realsense://123?stream=infrared&width=640&fps=30")
    assert (live.kind, live.target, live.modality, live.index, live.width, live.live) == ("realsense", "123", "ir", 1, 640, True)
    assert parse_source("realsense://").target == ""
    assert parse_source("0").kind == parse_source("/dev/video0").kind == parse_source("v4l2:///dev/video0").kind == "camera"
    assert parse_source("rec.db3").kind == parse_source("rec.bag").kind == "recording"
    video = parse_source("clip.mkv?depth_scale=0.0001", depth_scale=0.001)
    assert (video.kind, video.depth_scale, video.live) == ("video", 0.0001, False)
    assert parse_source(str(tmp_path), depth_scale=0.002).depth_scale == 0.002
    assert parse_source(f"{tmp_path}/*.png?loop=1").loop
    for bad in ("http://x", "missing.xyz", "rec.db3?stream=color", "clip.mkv?fps=3", "0?modality=sonar", ""):
        with pytest.raises(UsageError):
            parse_source(bad)


@needs_realsense
def test_recording_labels_equal_eval_on_the_saved_frames(models, recording, tmp_path, capsys):
    path, depth = recording
    code, lines, err = run_cli([models["depth"], "--source", path], capsys)
    assert code == 0, err
    assert [r["frame"] for r in lines] == list(range(N))  # playback drops nothing
    assert set(lines[0]) == {"stream", "frame", "timestamp", "label", "score", "top_k", "latency_ms"}
    assert {r["stream"] for r in lines} == {0}
    assert abs(lines[1]["timestamp"] - lines[0]["timestamp"] - 1 / 30) < 1e-3
    assert f"{N} frames" in err and "inference" in err and "p95" in err
    files = save_pngs(tmp_path / "frames" / CLASSES[0], depth)  # as recorded: 0.1 mm units
    labels = eval_labels(models["depth"], files, REC_SCALE)
    assert labels_of(lines) == labels
    assert len(set(labels)) == N and len({label for label, _ in labels}) > 1  # the frames really differ
    assert main(["eval", str(models["depth"]), "--data", str(tmp_path / "frames"), "--depth-scale", str(REC_SCALE),
                 "--classes", ",".join(CLASSES[:1]), "--json", "-q"]) == 0
    confusion = json.loads(capsys.readouterr().out)["confusion"][0]
    assert confusion == [sum(r["label"] == c for r in lines) for c in CLASSES]


@needs_realsense
def test_infrared_stream_runs_an_ir_model_and_is_refused_by_a_depth_model(models, recording, capsys):
    path, _ = recording
    code, lines, err = run_cli([models["ir"], "--source", f"{path}?stream=infrared", "--max-frames", "5"], capsys)
    assert code == 0, err
    assert [r["frame"] for r in lines] == list(range(5))
    code, lines, err = run_cli([models["depth"], "--source", f"{path}?stream=infrared"], capsys)
    assert code == 1 and not lines
    assert err.count("\n") == 1 and "expects depth" in err and "Traceback" not in err


def test_ffv1_video_and_png_sequence_give_eval_labels(models, tmp_path, capsys):
    frames = depth_frames(0.001)
    files = save_pngs(tmp_path / "png" / CLASSES[0], frames)
    video = write_depth_video(tmp_path / "depth.mkv", frames)
    labels = eval_labels(models["depth"], files, None)
    for source in (video, f"{files[0].parent}/*.png", files[0].parent):
        code, lines, err = run_cli([models["depth"], "--source", source], capsys)
        assert code == 0, err
        assert labels_of(lines) == labels, source
    # the same frames in metres×10⁻⁴ with the unit in the URI, and with --depth-scale
    coarse = save_pngs(tmp_path / "png-01mm", depth_frames(REC_SCALE))
    for args in (["--source", f"{coarse[0].parent}?depth_scale={REC_SCALE}"],
                 ["--source", coarse[0].parent, "--depth-scale", REC_SCALE]):
        code, lines, err = run_cli([models["depth"], *args], capsys)
        assert labels_of(lines) == eval_labels(models["depth"], coarse, REC_SCALE)


class FlakySource(ImageSource):
    """A camera that disappears after `fail_at` frames, refuses the first reopen, then comes back."""

    def __init__(self, spec, fail_at: int) -> None:
        super().__init__(spec)
        self.fail_at, self.failed, self.opens = fail_at, False, 0

    def open(self) -> None:
        self.opens += 1
        if self.opens == 2:
            raise SourceLost("camera 0 not found")
        super().open()

    def read(self) -> Frame | None:
        if self.count == self.fail_at and not self.failed:
            self.failed = True
            raise SourceLost("camera 0 delivered no frame")
        return super().read()


def test_a_camera_that_disappears_is_reopened_and_the_run_goes_on(models, tmp_path):
    save_pngs(tmp_path / "cam", depth_frames())
    spec = parse_source(str(tmp_path / "cam"))
    warnings: list[str] = []
    source = FlakySource(spec, fail_at=5)
    summary = pipeline.run(open_model(models["depth"]), spec, [], backoff_s=0.01, warn=warnings.append,
                           source=source)
    assert summary.frames == N and summary.reopens == 1 and source.opens == 3
    assert "delivered no frame; reopening" in warnings[0] and "not found" in warnings[1]
    assert warnings[-1].endswith("source reopened; continuing")


def test_smoothing_is_an_exponential_moving_average(models, tmp_path, capsys):
    smooth = pipeline.Smoother(0.25)
    first, second = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert smooth(first).tolist() == [1.0, 0.0] and smooth(second).tolist() == [0.75, 0.25]
    assert pipeline.Smoother(None)(second) is second
    save_pngs(tmp_path / "f", depth_frames(n=4))
    raw = {a: run_cli([models["depth"], "--source", tmp_path / "f", *a], capsys)[1] for a in ((), ("--smooth", "0.5"))}
    plain, smoothed = ([r["top_k"] for r in raw[a]] for a in raw)
    assert plain[0] == smoothed[0] and plain[1] != smoothed[1]
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(models["depth"]), "--source", str(tmp_path / "f"), "--smooth", "1.5"])
    assert exit_.value.code == 2


class SlowFeed(Source):
    """A live-like source: numbered frames as fast as asked."""

    modality = "depth"

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self.count = 0

    def read(self) -> Frame | None:
        time.sleep(0.002)
        self.count += 1
        return Frame(np.zeros((H, W), np.uint16), time.time(), self.count, None, "depth")


def test_live_capture_drops_the_oldest_frames_and_files_drop_none(tmp_path):
    spec = parse_source("0")
    capture = Capture(SlowFeed(spec), live=True, queue_size=2).start()
    time.sleep(0.2)
    first, _ = capture.get()
    capture.stop()
    assert capture.dropped > 0 and first.number > 2  # the oldest frames went
    save_pngs(tmp_path / "f", depth_frames(n=6))
    capture = Capture(ImageSource(parse_source(str(tmp_path / "f"))), live=False, queue_size=2)
    capture.source.open()
    capture.start()
    time.sleep(0.2)
    numbers = []
    while (item := capture.get()) is not END:
        numbers.append(item[0].number)
    capture.stop()
    assert numbers == list(range(6)) and capture.dropped == 0


def test_ctrl_c_stops_cleanly_with_the_summary(models, tmp_path):
    save_pngs(tmp_path / "loop", depth_frames(n=3))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "socket_edge.cli", "run", str(models["depth"]), "--source",
                             f"{tmp_path / 'loop'}?loop=1", "--json", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # Ctrl-C as in a terminal, also where this suite runs as a background job
                            # (which starts with SIGINT ignored, and so would its child)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert first["frame"] == 0
    assert proc.returncode == 130, err
    assert "(interrupted)" in err and "inference" in err and "Traceback" not in err


def test_save_writes_an_annotated_video_and_show_needs_a_gui(models, tmp_path, capsys):
    save_pngs(tmp_path / "f", depth_frames(n=5))
    out = tmp_path / "out" / "annotated.mp4"
    code, lines, err = run_cli([models["depth"], "--source", tmp_path / "f", "--save", out], capsys)
    assert code == 0, err
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and video.read()[1].shape == (H, W, 3)
    assert sorted(p.name for p in out.parent.iterdir()) == ["annotated.mp4"]
    if hasattr(cv2, "imshow") and "headless" not in cv2.__file__ and cv2.getBuildInformation().find("GTK") > 0:
        pytest.skip("this OpenCV has a GUI")
    code, lines, err = run_cli([models["depth"], "--source", tmp_path / "f", "--show"], capsys)
    assert code == 1 and err.count("\n") == 1 and "GUI" in err and "JetPack" in err


def test_user_mistakes_are_one_line(models, tmp_path, capsys):
    (tmp_path / "ir").mkdir()
    cv2.imwrite(str(tmp_path / "ir" / "a.png"), np.zeros((H, W), np.uint8))
    cases = [([models["depth"], "--source", tmp_path / "nothing.png"], 2, "does not exist"),
             ([models["depth"], "--source", tmp_path / "ir"], 1, "expects depth"),
             ([tmp_path / "missing.onnx", "--source", tmp_path / "ir"], 1, "does not exist"),
             ([models["depth"], "--source", "rec.db3?stream=colour"], 2, "stream must be")]
    for args, expected, words in cases:
        code, _, err = run_cli(args, capsys)
        assert (code, err.count("\n")) == (expected, 1) and words in err and "Traceback" not in err, err


def test_run_and_bench_need_no_torch(models, tmp_path):
    save_pngs(tmp_path / "f", depth_frames(n=3))
    code = (f"from socket_edge.cli import main\n"
            f"assert main(['run', {str(models['depth'])!r}, '--source', {str(tmp_path / 'f')!r}, '--json']) == 0\n"
            f"assert main(['bench', {str(models['depth'])!r}, '--frames', '2', '--threads', '1']) == 0\n"
            "assert 'torch' not in sys.modules")
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"frame"') == 3 and "(pure inference" in result.stdout


def test_pt_backend_gives_the_onnx_labels_and_bench_reports_overhead(models, tmp_path, capsys):
    save_pngs(tmp_path / "f", depth_frames(n=6))
    labels = {}
    for model in (models["net"], models["net"].with_suffix(".pt")):
        code, lines, err = run_cli([model, "--source", tmp_path / "f"], capsys)
        assert code == 0, err
        labels[model.suffix] = lines
    assert [r["label"] for r in labels[".onnx"]] == [r["label"] for r in labels[".pt"]]
    assert [r["score"] for r in labels[".onnx"]] == pytest.approx([r["score"] for r in labels[".pt"]], abs=1e-4)
    result = bench(models["depth"], parse_source(str(tmp_path / "f")), frames=6, threads=1)
    assert result["inference"][0]["fps"] > 0 and result["pipeline"]["frames"] == 6
    assert "overhead_pct" in result
    assert main(["bench", str(models["depth"]), "--frames", "3", "--threads", "1"]) == 0
    assert "pure inference" in capsys.readouterr().out


def session_settings(model: OnnxModel) -> tuple[int, int, list[str]]:
    from socket_edge.backends.onnx import SPIN_KEYS

    options = model.session.get_session_options()
    return (options.intra_op_num_threads, options.inter_op_num_threads,
            [options.get_session_config_entry(key) for key in SPIN_KEYS])


def test_onnx_threads_spin_unless_told_not_to_and_bench_uses_the_same_options(models, tmp_path, capsys):
    assert session_settings(open_model(models["depth"], providers="cpu", threads=2)) == (2, 1, ["1", "1"])
    sleeping = open_model(models["depth"], providers="cpu", threads=1, spinning=False)
    assert session_settings(sleeping) == (1, 1, ["0", "0"])
    seen = []
    original = OnnxModel.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(session_settings(self))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OnnxModel, "__init__", spy)
        for flags, expected in (([], ["1", "1"]), (["--no-spin"], ["0", "0"])):
            seen.clear()
            assert main(["bench", str(models["depth"]), "--frames", "2", "--threads", "1", "--json", *flags]) == 0
            assert json.loads(capsys.readouterr().out)["spinning"] == (flags == [])
            assert seen and all(s == (1, 1, expected) for s in seen)
        save_pngs(tmp_path / "f", depth_frames(n=2))
        seen.clear()
        assert main(["run", str(models["depth"]), "--source", str(tmp_path / "f"), "--no-spin", "--threads", "1", "-q"]) == 0
        assert seen == [(1, 1, ["0", "0"])]


def test_the_tensorrt_provider_caches_beside_the_model_and_is_fp16_only_for_fp16_graphs(models):
    from socket_edge.backends.onnx import CPU, TENSORRT, session_providers, trt_cache_dir

    model = models["depth"]
    assert OnnxModel(model, providers="cpu").info.precision == "fp32"
    cache = str(model.with_name(model.name + ".trt-cache"))
    assert trt_cache_dir(model) == Path(cache)
    chosen = [TENSORRT, "CUDAExecutionProvider", CPU]
    assert session_providers(chosen, model, "fp32") == [
        (TENSORRT, {"trt_fp16_enable": "False", "trt_engine_cache_enable": "True", "trt_engine_cache_path": cache,
                    "trt_timing_cache_enable": "True", "trt_timing_cache_path": cache}),
        "CUDAExecutionProvider", CPU]
    assert session_providers(chosen, model, "fp16")[0][1]["trt_fp16_enable"] == "True"
    assert session_providers([TENSORRT, CPU], None, "fp16") == [(TENSORRT, {"trt_fp16_enable": "True"}), CPU]
    assert session_providers([CPU], model, "fp32") == [CPU]  # ONNX Runtime without TensorRT: names only
