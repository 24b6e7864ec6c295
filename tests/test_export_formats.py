"""The formats table and option validation, the engine's plan and sidecar (read without TensorRT),
provider choice, and the TensorRT builder where TensorRT and a GPU exist."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from socket_edge.cli import main
from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError, MissingDependencyError, UsageError
from socket_edge.export import formats
from socket_edge.backends.engine import Gpu, refuse_foreign, summarize
from socket_edge.modelfile import (KEY_COMPUTE, KEY_GPU, KEY_TENSORRT, BatchSpec, ModelInfo, read_sidecar, sidecar_path,
                                   write_engine)
from socket_edge.backends.onnx import choose_providers

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
CAN_BUILD = HAS_TENSORRT and torch.cuda.is_available()
HAS_CUDA_PYTHON = importlib.util.find_spec("cuda") is not None and importlib.util.find_spec("cuda.bindings") is not None
NEEDS_GPU = pytest.mark.skipif(not CAN_BUILD, reason="tensorrt does not import here (it cannot be installed on CPU "
                               "machines)" if not HAS_TENSORRT else "building a TensorRT engine needs an NVIDIA GPU")


def save_source(folder: Path) -> Path:
    from test_artifact import small_ensemble

    from socket_edge.models import artifact

    return artifact.save(small_ensemble(), folder / "m.pt", "source", {})


@pytest.fixture
def source_pt(tmp_path):
    return save_source(tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "--int8 needs --calib DIR: target images (the camera's modality, class folders or flat)"),
    (["--format", "engine", "--int8", "--calib", "x", "--int8-scheme", "cpu"],
     "the engine format does not take --int8-scheme (it takes: --opset, --batch, --dynamic-batch, --fp16, --int8, "
     "--calib, --calib-frames, --calib-method, --prune-zeta, --check-data)"),
    (["--fp16", "--int8", "--calib", "x"], "--fp16 and --int8 exclude each other: pick one precision"),
    (["--calib-frames", "10"], "--calib-frames is only used with --int8; add --int8 or drop --calib-frames"),
    (["--format", "onxx"], "unknown export format 'onxx' (formats: onnx, engine); did you mean 'onnx'?"),
    (["--format", "engin"], "did you mean 'engine'?"),
    (["--format", "tflite"], "unknown export format 'tflite' (formats: onnx, engine)\n"),
    (["--batch", "2", "--dynamic-batch", "1:2:4"], "--batch and --dynamic-batch exclude each other"),
    (["--format", "engine", "--calib", "x"], "--calib is only used with --int8; add --int8 or drop --calib"),
    (["--out", "model.bin"], "does not end in .onnx, the onnx format's suffix"),
    (["--opset", "9"], "--opset 9 is not supported; use 13..20"),
])
def test_bad_options_are_refused_with_exit_2(source_pt, capsys, argv, message):
    assert main(["export", str(source_pt), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not source_pt.with_suffix(".onnx").exists()


def test_dynamic_batch_syntax_is_checked_by_the_parser(source_pt, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(source_pt), "--dynamic-batch", "4:2:8"])
    assert exit_info.value.code == 2 and "need 1 <= MIN <= OPT <= MAX" in capsys.readouterr().err


def test_the_table_drives_validation():
    for fmt in formats.FORMATS:
        assert fmt.suffix == "." + fmt.name
        given = {flag: True for flag in fmt.options if flag not in ("--batch", "--fp16")}
        assert formats.validate(fmt.name, given) is fmt
    assert formats.get_format("ENGINE").needs_gpu and not formats.get_format("onnx").needs_gpu


@pytest.mark.skipif(CAN_BUILD, reason="this machine has tensorrt and a GPU")
def test_engine_export_without_tensorrt_or_gpu_stops_with_one_line(source_pt, capsys):
    assert main(["export", str(source_pt), "--format", "engine"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("socket-edge: error: --format engine needs ")
    if not HAS_TENSORRT:
        assert "the tensorrt Python package (pip install 'socket-edge[tensorrt-cu12]' or " \
               "'socket-edge[tensorrt-cu13]' (the CUDA major of the driver; on a Jetson [jetpack6] or [jetpack7]" in err
    if not HAS_CUDA_PYTHON:
        assert "cuda-python (pip install 'socket-edge[tensorrt-cu12]' or 'socket-edge[tensorrt-cu13]'" in err
    elif not torch.cuda.is_available():
        assert "an NVIDIA GPU with CUDA (CUDA sees none here)" in err
    assert "export --format onnx here and build the engine on the device with `socket-edge export MODEL.onnx " \
           "--format engine` (no torch needed there)" in err
    assert not source_pt.with_suffix(".engine").exists()


@pytest.fixture(scope="module")
def exported_onnx(tmp_path_factory):
    """m.onnx (a dynamic batch) and fixed.onnx (a batch of 2) beside m.pt, shared: the tests only read them."""
    folder = tmp_path_factory.mktemp("exported")
    source_pt = save_source(folder)
    assert main(["export", str(source_pt), "--batch", "2", "--out", str(folder / "fixed.onnx"), "-q"]) == 0
    assert main(["export", str(source_pt), "-q"]) == 0
    return source_pt.with_suffix(".onnx")


def test_an_engine_from_an_exported_graph_reaches_tensorrt_without_torch(exported_onnx, tmp_path):
    """On a Jetson's runtime install (no torch, no onnx package) `export MODEL.onnx --format engine`
    reads the graph and its metadata and goes as far as TensorRT: here, where TensorRT cannot be
    installed, it stops with that one line and writes nothing."""
    from test_import_rules import run_without_torch

    code = (f"from socket_edge.cli import main\nraise SystemExit(main(['export', {str(exported_onnx)!r}, "
            "'--format', 'engine', '--dynamic-batch', '1:2:4']))")
    result = run_without_torch(code)
    if CAN_BUILD:  # pragma: no cover - needs TensorRT and a GPU
        assert result.returncode == 0, result.stderr
        assert "tensorrt fp32 vs m.onnx in ONNX Runtime on 32 generated depth frames" in result.stdout
        return
    err = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(err) == 1, result.stderr
    assert err[0].startswith("socket-edge: error: --format engine needs ") and \
        err[0].endswith("an engine is built on the GPU that will run it: run this on the device that will run m.onnx")
    assert "No module named 'onnx'" not in result.stderr and not exported_onnx.with_suffix(".engine").exists()


@pytest.mark.parametrize("argv, message", [
    ([], "m.onnx is already an ONNX graph; `export {onnx} --format engine` builds a TensorRT engine from it"),
    (["--format", "engine", "--fp16"], "--fp16 changes the graph: export the .pt with it on the workstation, then "
                                       "build the engine from that .onnx"),
    (["--format", "engine", "--prune-zeta", "0.1"], "--prune-zeta changes the graph"),
    (["--format", "engine", "--batch", "4", "--graph", "fixed.onnx"],
     "the graph was exported with a fixed batch of 2; build the engine without --batch/--dynamic-batch"),
    (["--format", "engine", "--out", "x.onnx"], "--out x.onnx does not end in .engine"),
])
def test_an_engine_from_an_exported_graph_refuses_what_it_cannot_do(exported_onnx, capsys, argv, message):
    onnx = exported_onnx
    if "--graph" in argv:
        onnx = onnx.with_name(argv[argv.index("--graph") + 1])
        argv = argv[:argv.index("--graph")]
    assert main(["export", str(onnx), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(onnx=onnx) in err[0], err
    assert not onnx.with_suffix(".engine").exists()


def fabricated_info() -> ModelInfo:
    contract = InputContract.for_modality("nir", ["country", "field"], 128)
    members = ({"arch": "mobilenet_v2", "head": "paper", "num_classes": 2, "bottleneck": 256, "parameters": 2_555_000},
               {"arch": "resnet18", "head": "paper", "num_classes": 2, "bottleneck": 256, "parameters": 11_300_000})
    provenance = {"export": {"kind": "ensemble", "command": "socket-edge export x.pt"}, "source": {"stage": "adapt"}}
    return ModelInfo(contract, (0.4, 0.6), members, provenance, "x.pt", "fp16", BatchSpec(1, 4, 8))


ENGINE_PROPS = {KEY_TENSORRT: "10.3.0", KEY_GPU: "Orin", KEY_COMPUTE: "8.7"}


def fabricated_engine(tmp_path, plan: bytes = b"\x00dummy plan bytes\xff"):
    return write_engine(tmp_path / "m.engine", fabricated_info().to_props(**ENGINE_PROPS), plan)


def test_engine_is_a_plain_plan_with_a_sidecar(tmp_path):
    path = fabricated_engine(tmp_path)
    assert path.read_bytes() == b"\x00dummy plan bytes\xff"  # nothing prepended: trtexec takes it
    assert sidecar_path(path) == tmp_path / "m.engine.json"
    props = read_sidecar(path)
    assert props == json.loads(sidecar_path(path).read_text()) == fabricated_info().to_props(**ENGINE_PROPS)
    assert ModelInfo.from_props(props, "m.engine") == fabricated_info()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]  # no temporary file left


def test_an_engine_without_its_sidecar_is_refused_with_how_to_rebuild(tmp_path, capsys):
    path = fabricated_engine(tmp_path)
    sidecar_path(path).unlink()
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(
        "has no sidecar m.engine.json beside it (its contract, classes and the GPU it was built for); copy it beside "
        "the engine, or rebuild both with: socket-edge export MODEL.pt --format engine on this device")


@pytest.mark.parametrize("content, message", [
    ("{not json", "m.engine.json is damaged (Expecting property name"),
    ('["a list"]', "m.engine.json is damaged (not a JSON map of strings)"),
    ('{"socket_edge.zeta": [1]}', "m.engine.json is damaged (not a JSON map of strings)"),
    ("{}", "has no socket-edge input contract"),
])
def test_a_damaged_sidecar_is_refused(tmp_path, content, message):
    path = fabricated_engine(tmp_path)
    sidecar_path(path).write_text(content)
    with pytest.raises(ArtifactError, match=re.escape(message)):
        summarize(path)


def test_a_rewritten_engine_never_keeps_the_old_sidecar(tmp_path):
    path = fabricated_engine(tmp_path)
    sidecar_path(path).chmod(0o444)
    write_engine(path, {"socket_edge.precision": "fp32"}, b"new plan")
    assert read_sidecar(path) == {"socket_edge.precision": "fp32"} and path.read_bytes() == b"new plan"


@pytest.mark.parametrize("tensorrt, gpu, built", [
    ("10.3.1", Gpu("Orin", "8.7"), "TensorRT 10.3.0 for Orin (compute 8.7)"),
    ("10.3.0", Gpu("NVIDIA H200", "9.0"), "TensorRT 10.3.0 for Orin (compute 8.7)"),
    ("10.3.0", Gpu("Orin", "8.6"), "TensorRT 10.3.0 for Orin (compute 8.7)"),
])
def test_an_engine_built_elsewhere_is_refused(tmp_path, tensorrt, gpu, built):
    props = read_sidecar(fabricated_engine(tmp_path))
    refuse_foreign(props, "m.engine", "10.3.0", Gpu("Orin", "8.7"))  # where it was built: fine
    with pytest.raises(ArtifactError) as error:
        refuse_foreign(props, "m.engine", tensorrt, gpu)
    assert str(error.value) == (
        f"m.engine was built by {built}; this device has TensorRT {tensorrt} and {gpu.name} (compute {gpu.compute}), "
        "and a plan runs only where it was built: rebuild it on this device with: socket-edge export x.pt --format "
        "engine")


def test_inspect_reads_a_fabricated_engine_without_tensorrt(tmp_path, capsys):
    path = fabricated_engine(tmp_path, b"x" * 1000)
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "MB, TensorRT 10.3.0 engine for Orin (compute 8.7), fp16, ensemble)" in text
    assert "raw float32 N×1×128×128 (batch 1:4:8)" in text and "probs float32 N×2" in text
    assert "ζ=0.600  resnet18 (paper head, 2 classes, 11.30 M parameters)" in text
    assert "nir intensity, uint8 full scale" in text and "command   socket-edge export x.pt" in text
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["graph"]["tensorrt"] == "10.3.0" and summary["zeta"] == [0.4, 0.6]
    assert summary["graph"]["gpu"] == "Orin" and summary["graph"]["compute"] == "8.7"
    assert summary["contract"]["modality"] == "nir" and summary["size_bytes"] == path.stat().st_size


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_eval_of_an_engine_without_tensorrt_is_one_line(tmp_path, capsys):
    from conftest import write_class_folders

    path = fabricated_engine(tmp_path, b"x")
    data = write_class_folders(tmp_path / "nir", "ir", per_class=1, classes=("country", "field"))
    assert main(["eval", str(path), "--data", str(data)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tensorrt is not installed" in err


def test_provider_choice():
    cpu, cuda, trt = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
    assert choose_providers(None, [cpu]) == [cpu]
    assert choose_providers("auto", ["AzureExecutionProvider", cpu, cuda, trt]) == [trt, cuda, cpu]
    assert choose_providers("cuda", [cpu, cuda]) == [cuda, cpu]
    assert choose_providers(["CPUExecutionProvider"], [cpu, cuda]) == [cpu]
    with pytest.raises(MissingDependencyError, match="has no CUDAExecutionProvider .* install onnxruntime-gpu"):
        choose_providers("cuda", [cpu])
    with pytest.raises(UsageError, match="unknown inference provider 'gpu'"):
        choose_providers("gpu", [cpu])


@NEEDS_GPU
def test_tensorrt_engine_matches_pytorch(source_pt, tmp_path):  # pragma: no cover - needs TensorRT and a GPU
    from socket_edge.export import exporter
    from socket_edge.export.parity import generated_frames
    from socket_edge.backends.engine import EngineModel
    from socket_edge.export.tensorrt import timing_cache_path
    from socket_edge.models import artifact

    out = tmp_path / "m.engine"
    summary = exporter.export(source_pt, "engine", out=out, dynamic_batch=(1, 2, 4))
    assert timing_cache_path(out).stat().st_size > 0
    assert summary["parity"][-1]["precision"] == "tensorrt fp32" and summary["parity"][-1]["max_abs_diff"] < 1e-3
    engine = EngineModel(out)
    model, _ = artifact.load(source_pt)
    frames = generated_frames(model.contract, 5)
    with torch.no_grad():
        reference = model(torch.from_numpy(frames)).numpy()
    assert np.abs(engine.predict(frames) - reference).max() < 1e-3
    assert engine.contract == model.contract and read_sidecar(out)[KEY_TENSORRT]
    fp16 = exporter.export(source_pt, "engine", out=out, fp16=True)  # a rebuild beside the timing cache
    assert fp16["parity"][-1]["precision"] == "tensorrt fp16" and fp16["parity"][-1]["max_abs_diff"] < 1e-2
    assert EngineModel(out).info.precision == "fp16"


def test_inspect_of_an_engine_needs_no_torch(tmp_path):
    from test_import_rules import run_without_torch

    path = fabricated_engine(tmp_path)
    code = f"from socket_edge.cli import main\nassert main(['inspect', {str(path)!r}]) == 0\nassert 'torch' not in sys.modules"
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert "TensorRT 10.3.0 engine for Orin (compute 8.7)" in result.stdout


@NEEDS_GPU
def test_an_engine_runs_without_torch(source_pt, tmp_path):  # pragma: no cover - needs TensorRT and a GPU
    """eval, inspect, run and bench of an .engine with torch blocked (as on a Jetson runtime image)."""
    from conftest import write_class_folders
    from test_import_rules import run_without_torch

    from socket_edge.export import exporter

    out = tmp_path / "m.engine"
    exporter.export(source_pt, "engine", out=out)
    data = write_class_folders(tmp_path / "data", "depth", per_class=2, classes=("a", "b", "c"))
    frames = data / "a"
    code = f"""
import numpy as np
from socket_edge.backends import open_model
from socket_edge.cli import main
model = open_model({str(out)!r})
probs = model.predict(np.full((3, *model.contract.input_shape), 1500, np.float32))
assert probs.shape == (3, len(model.contract.class_names)) and abs(float(probs.sum()) - 3) < 1e-3
assert main(["inspect", {str(out)!r}]) == 0
assert main(["eval", {str(out)!r}, "--data", {str(data)!r}, "-q"]) == 0
assert main(["run", {str(out)!r}, "--source", {str(frames)!r}, "--json"]) == 0
assert main(["bench", {str(out)!r}, "--frames", "2"]) == 0
assert "torch" not in sys.modules
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr


def test_the_tensorrt_names_used_are_those_checked_against_tensorrt_10_and_11():
    """tools/check_tensorrt_api.py checks these names in the 10.x and 11.x bindings wheels; the
    builder flags and calibrators TensorRT 11 removed must not come back."""
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("check", Path(__file__).resolve().parents[1] / "tools/check_tensorrt_api.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    names = check.used_names([check.ROOT / s for s in check.SOURCES])
    assert {"STRONGLY_TYPED", "create_timing_cache", "ignore_mismatch", "execute_async_v3", "get_tensor_dtype",
            "set_input_shape", "serialize", "__version__"} <= names
    assert not names & {"BuilderFlag", "FP16", "INT8", "IInt8EntropyCalibrator2", "int8_calibrator", "with_name"}


def test_an_engine_is_not_built_from_an_int8_graph_made_for_the_cpu(source_pt, tmp_path, capsys):
    from conftest import write_class_folders

    calib = write_class_folders(tmp_path / "calib", "depth", per_class=4, classes=("a", "b", "c"))
    graph = tmp_path / "cpu-int8.onnx"
    assert main(["export", str(source_pt), "--int8", "--calib", str(calib), "--out", str(graph), "-q"]) == 0
    capsys.readouterr()
    assert main(["export", str(graph), "--format", "engine"]) == 2
    assert (f"{graph} is an int8 graph for ONNX Runtime's CPU (uint8 activations), which TensorRT cannot build; export "
            "the .pt with --int8 --int8-scheme tensorrt and build from that") in capsys.readouterr().err
    assert not graph.with_suffix(".engine").exists()


def test_an_engine_from_an_exported_graph_carries_its_metadata(exported_onnx, monkeypatch, capsys):
    """The glue around TensorRT, which cannot run here: TensorRT's build stands in as a stub (the
    plan is the graph's bytes, run by ONNX Runtime); the sidecar gets the graph's contract, ζ and
    members, the engine's batch profile and where it was built from; the summary says what the
    parity was measured against."""
    from socket_edge.export import engine_from_onnx

    monkeypatch.setattr(engine_from_onnx.tensorrt, "check_available", lambda graph: ("10.16.1", Gpu("Orin", "8.7")))
    monkeypatch.setattr(engine_from_onnx.tensorrt, "build_engine", lambda data, shape, batch, cache: data)
    monkeypatch.setattr(engine_from_onnx, "EngineModel", lambda plan, props: onnx_from_bytes(plan))
    out = exported_onnx.with_suffix(".engine")
    assert main(["export", str(exported_onnx), "--format", "engine", "--dynamic-batch", "1:2:4"]) == 0
    printed = capsys.readouterr().out
    assert "engine fp32" in printed and "batch 1:2:4" in printed
    assert "parity   tensorrt fp32 vs m.onnx in ONNX Runtime on 32 generated depth frames: max |Δp| 0.00e+00" in printed
    graph, engine = onnx_from_bytes(exported_onnx.read_bytes()).info, ModelInfo.from_props(read_sidecar(out), "e")
    assert engine.contract == graph.contract and engine.zeta == graph.zeta and engine.members == graph.members
    assert engine.batch == BatchSpec(1, 2, 4) and engine.source == graph.source == "m.pt"
    assert engine.provenance["engine"]["from"] == "m.onnx" and engine.provenance["export"] == graph.provenance["export"]
    assert engine.provenance["engine"]["parity"]["max_abs_diff"] == 0.0
    assert read_sidecar(out)[KEY_GPU] == "Orin" and out.read_bytes() == exported_onnx.read_bytes()


def onnx_from_bytes(data: bytes):
    from socket_edge.backends.onnx import OnnxModel

    return OnnxModel(data, providers="cpu")
