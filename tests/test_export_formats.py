"""The formats table and option validation, the engine file (header readable without TensorRT),
provider choice, and the TensorRT builder where TensorRT and a GPU exist."""

import importlib.util
import json
import struct

import numpy as np
import pytest
import torch

from socket_edge.cli import main
from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError, MissingDependencyError, UsageError
from socket_edge.export import formats
from socket_edge.modelfile import KEY_TENSORRT, BatchSpec, ModelInfo, read_engine, read_engine_header, write_engine
from socket_edge.backends.onnx import choose_providers

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
CAN_BUILD = HAS_TENSORRT and torch.cuda.is_available()


@pytest.fixture
def source_pt(tmp_path):
    from test_artifact import small_ensemble

    from socket_edge.models import artifact

    return artifact.save(small_ensemble(), tmp_path / "m.pt", "source", {})


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "the onnx format does not take --int8 (it takes: --opset, --batch, --dynamic-batch, --fp16, "
                 "--prune-zeta, --check-data)"),
    (["--format", "onxx"], "unknown export format 'onxx' (formats: onnx, engine); did you mean 'onnx'?"),
    (["--format", "engin"], "did you mean 'engine'?"),
    (["--format", "tflite"], "unknown export format 'tflite' (formats: onnx, engine)\n"),
    (["--batch", "2", "--dynamic-batch", "1:2:4"], "--batch and --dynamic-batch exclude each other"),
    (["--format", "engine", "--int8"], "--int8 needs --calib DIR"),
    (["--format", "engine", "--calib", "x"], "--calib DIR is only used with --int8"),
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
        given = {flag: True for flag in fmt.options if flag not in ("--batch", "--calib", "--int8")}
        assert formats.validate(fmt.name, given) is fmt
    assert formats.get_format("ENGINE").needs_gpu and not formats.get_format("onnx").needs_gpu


@pytest.mark.skipif(CAN_BUILD, reason="this machine has tensorrt and a GPU")
def test_engine_export_without_tensorrt_or_gpu_stops_with_one_line(source_pt, capsys):
    assert main(["export", str(source_pt), "--format", "engine"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("socket-edge: error: --format engine needs ")
    if not HAS_TENSORRT:
        assert "the tensorrt Python package (pip install 'socket-edge[tensorrt]'" in err
    if not torch.cuda.is_available():
        assert "an NVIDIA GPU with CUDA" in err
    assert "export --format onnx here and build the engine on the device" in err
    assert not source_pt.with_suffix(".engine").exists()


def fabricated_info() -> ModelInfo:
    contract = InputContract.for_modality("nir", ["country", "field"], 128)
    members = ({"arch": "mobilenet_v2", "head": "paper", "num_classes": 2, "bottleneck": 256, "parameters": 2_555_000},
               {"arch": "resnet18", "head": "paper", "num_classes": 2, "bottleneck": 256, "parameters": 11_300_000})
    provenance = {"export": {"kind": "ensemble", "command": "socket-edge export x.pt"}, "source": {"stage": "adapt"}}
    return ModelInfo(contract, (0.4, 0.6), members, provenance, "x.pt", "fp16", BatchSpec(1, 4, 8))


def test_engine_header_round_trip(tmp_path):
    info = fabricated_info()
    header = info.to_props(**{KEY_TENSORRT: "10.3.0"})
    path = write_engine(tmp_path / "m.engine", header, b"\x00dummy engine bytes\xff")
    raw = path.read_bytes()
    (length,) = struct.unpack("<I", raw[8:12])
    assert raw[:8] == b"SEENGINE" and json.loads(raw[12:12 + length]) == header
    read, offset = read_engine_header(path)
    assert read == header and offset == 12 + length
    assert read_engine(path) == (header, b"\x00dummy engine bytes\xff")
    assert ModelInfo.from_props(read, "m.engine") == info
    assert [p.name for p in tmp_path.iterdir()] == ["m.engine"]  # no temporary file left


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01TRT engine without header", "not a socket-edge engine file"),
    (b"SEENG", "not a socket-edge engine file"),
    (b"SEENGINE" + struct.pack("<I", 100) + b"{}", "truncated inside its header"),
    (b"SEENGINE" + struct.pack("<I", 4) + b"[1,2", "damaged header"),
    (b"SEENGINE" + struct.pack("<I", 2) + b"{}", "has no socket-edge input contract"),
])
def test_damaged_engine_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.engine"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        header, _ = read_engine_header(path)
        ModelInfo.from_props(header, str(path))


def test_inspect_reads_a_fabricated_engine_without_tensorrt(tmp_path, capsys):
    path = write_engine(tmp_path / "m.engine", fabricated_info().to_props(**{KEY_TENSORRT: "10.3.0"}), b"x" * 1000)
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "MB, TensorRT 10.3.0 engine, fp16, ensemble)" in text
    assert "raw float32 N×1×128×128 (batch 1:4:8)" in text and "probs float32 N×2" in text
    assert "ζ=0.600  resnet18 (paper head, 2 classes, 11.30 M parameters)" in text
    assert "nir intensity, uint8 full scale" in text and "command   socket-edge export x.pt" in text
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["graph"]["tensorrt"] == "10.3.0" and summary["zeta"] == [0.4, 0.6]
    assert summary["contract"]["modality"] == "nir" and summary["size_bytes"] == path.stat().st_size


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_eval_of_an_engine_without_tensorrt_is_one_line(tmp_path, capsys):
    from conftest import write_class_folders

    path = write_engine(tmp_path / "m.engine", fabricated_info().to_props(), b"x")
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


@pytest.mark.skipif(not CAN_BUILD, reason="tensorrt does not import here (it cannot be installed on CPU machines)"
                    if not HAS_TENSORRT else "building a TensorRT engine needs an NVIDIA GPU")
def test_tensorrt_engine_matches_pytorch(source_pt, tmp_path):  # pragma: no cover - needs TensorRT and a GPU
    from socket_edge.export import exporter
    from socket_edge.export.parity import generated_frames
    from socket_edge.export.tensorrt import EngineModel
    from socket_edge.models import artifact

    out = tmp_path / "m.engine"
    summary = exporter.export(source_pt, "engine", out=out, dynamic_batch=(1, 2, 4))
    assert summary["parity"][-1]["precision"] == "tensorrt fp32" and summary["parity"][-1]["max_abs_diff"] < 1e-3
    engine = EngineModel(out)
    model, _ = artifact.load(source_pt)
    frames = generated_frames(model.contract, 5)
    with torch.no_grad():
        reference = model(torch.from_numpy(frames)).numpy()
    assert np.abs(engine.predict(frames) - reference).max() < 1e-3
    assert engine.contract == model.contract and read_engine_header(out)[0][KEY_TENSORRT]
