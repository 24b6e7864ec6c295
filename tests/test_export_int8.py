"""`socket-edge export --int8 --calib DIR`: a Q/DQ graph in a real ONNX Runtime session, its float
input normalisation and output, per-channel weight scales, metadata, agreement with fp32, both
activation schemes, and the one-line refusals that write nothing."""

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from torch import nn

from conftest import write_class_folders
from socket_edge.backends.onnx import OnnxModel
from socket_edge.cli import main
from socket_edge.export.summary import describe
from socket_edge.export import exporter, quantize
from socket_edge.export.parity import generated_frames
from socket_edge.models import artifact
from test_export import depth_ensemble, torch_probs
from test_export_formats import NEEDS_GPU

AGREEMENT = 90.0  # % argmax agreement of int8 with fp32 on self-made depth frames (measured: 100)
MAX_DIFF = 0.1    # max |Δp| of int8 against fp32 on them (measured: about 0.02)
ARCHS = ("mobilenet_v2", "mobilenet_v3_small")


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """A two-member depth ensemble (MobileNetV2, MobileNetV3-small) exported with --int8, calibrated
    on self-made depth class folders and checked on other ones."""
    root = tmp_path_factory.mktemp("int8")
    pt = artifact.save(depth_ensemble(ARCHS, (1.0, 2.0)), root / "m.pt", "ensemble", {})
    calib = write_class_folders(root / "calib", "depth", per_class=6, seed=1)
    check = write_class_folders(root / "check", "depth", per_class=4, seed=2)
    out = root / "m.onnx"
    argv = ["export", str(pt), "--out", str(out), "--int8", "--calib", str(calib), "--calib-frames", "12",
            "--check-data", str(check), "--json", "-q"]
    assert main(argv) == 0
    return pt, out, check


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {name: node for node in graph.node for name in node.output}


def test_int8_graph_runs_in_onnx_runtime_and_agrees_with_fp32(int8_export):
    pt, out, _ = int8_export
    session = OnnxModel(out, providers="cpu", threads=2)
    assert session.info.precision == "int8" and session.session.get_inputs()[0].type == "tensor(float)"
    model, _ = artifact.load(pt)
    frames = generated_frames(model.contract, 16, seed=5)
    probs, reference = session.predict(frames), torch_probs(model, frames)
    assert probs.shape == (16, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == reference.argmax(1)).mean() * 100 >= AGREEMENT
    assert np.abs(probs - reference).max() <= MAX_DIFF


def test_int8_graph_quantises_the_body_only(int8_export):
    proto = onnx.load(str(int8_export[1]))
    graph = proto.graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 100
    producers = _producers(graph)
    qdq = ("QuantizeLinear", "DequantizeLinear")
    normaliser = [node for node in graph.node if node.name.startswith("/input/") and node.op_type not in qdq]
    assert [node.op_type for node in normaliser] == ["Mul", "LessOrEqual", "Div", "Clip", "Where", "Tile", "Sub", "Div"]
    for node in normaliser:  # float32 from the raw input on: nothing in it comes from a DequantizeLinear
        assert all(producers[name].op_type not in qdq for name in node.input if name in producers)
    first = [node for node in graph.node if "raw" in node.input]
    assert {node.op_type for node in first} == {"Mul", "LessOrEqual"}
    normalised = normaliser[-1].output[0]  # quantised only where the first convolutions read it
    assert {n.op_type for n in graph.node if normalised in n.input} == {"QuantizeLinear"}
    (output,) = graph.output
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    last = producers[output.name]
    assert last.op_type not in ("QuantizeLinear", "DequantizeLinear")
    softmaxes = [node for node in graph.node if node.op_type == "Softmax"]
    assert len(softmaxes) == 2
    for softmax in softmaxes:  # each member's logits are dequantised, then softmax and the ζ sum in float
        assert producers[softmax.input[0]].op_type == "DequantizeLinear"
        consumers = [n for n in graph.node if softmax.output[0] in n.input]
        assert consumers and all(n.op_type not in ("QuantizeLinear", "DequantizeLinear") for n in consumers)


def test_int8_weights_have_one_scale_per_output_channel(int8_export):
    graph = onnx.load(str(int8_export[1])).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = _producers(graph)
    convs = [node for node in graph.node if node.op_type in ("Conv", "Gemm")]
    model, _ = artifact.load(int8_export[0])
    assert len(convs) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    for node in convs:
        dq = producers[node.input[1]]
        assert dq.op_type == "DequantizeLinear"
        weight, scale = initializers[dq.input[0]], initializers[dq.input[1]]
        axis = {a.name: a.i for a in dq.attribute}.get("axis", 1)
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[axis],)
        assert axis == (0 if node.op_type == "Conv" else 1 - int(any(a.name == "transB" and a.i for a in node.attribute)))
        assert not initializers[dq.input[2]].any()  # symmetric weights: zero point 0


def test_int8_export_reports_parity_accuracy_and_calibration(int8_export, capsys):
    pt, out, check = int8_export
    assert main(["inspect", str(out), "--json"]) == 0
    export = json.loads(capsys.readouterr().out)["export"]
    assert export["precision"] == "int8"
    int8 = export["int8"]
    assert int8["calibration"] == {"frames": 12, "of": 18, "seed": 0, "folder": "calib", "method": "percentile"}
    assert int8["scheme"] == "cpu" and int8["float_nodes"] >= 10
    fp32, result = export["parity"]
    assert (fp32["precision"], result["precision"]) == ("fp32", "int8") and result["n"] == 12
    assert result["argmax_agreement"] >= AGREEMENT and result["max_abs_diff"] <= MAX_DIFF
    model, _ = artifact.load(pt)
    frames = quantize.calibration_frames(model.contract, check, 100).frames  # all 12, sorted as the check reads them
    labels = np.repeat(np.arange(3), 4)
    accuracy = 100 * (OnnxModel(out, providers="cpu").predict(frames).argmax(1) == labels).mean()
    assert result["accuracy"] == pytest.approx(accuracy, abs=0.01)
    assert result["accuracy_fp32"] == pytest.approx(100 * (torch_probs(model, frames).argmax(1) == labels).mean(),
                                                    abs=0.01)
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "onnx opset 17, int8, ensemble)" in text and "parity    int8: max |Δp|" in text
    assert "int8      cpu scheme, calibrated on 12 of 18 images of calib (percentile)" in text


def test_the_tensorrt_scheme_is_symmetric_int8(int8_export, tmp_path, capsys):
    check = int8_export[2]
    pt = artifact.save(depth_ensemble(("mobilenet_v3_small",), (1.0,)), tmp_path / "small.pt", "source", {})
    out = tmp_path / "trt.onnx"
    assert main(["export", str(pt), "--out", str(out), "--int8", "--calib", str(check), "--int8-scheme", "tensorrt",
                 "--calib-method", "minmax", "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)  # one JSON object: the calibrator's own prints are kept out
    assert summary["int8"]["scheme"] == "tensorrt" and summary["int8"]["calibration"]["method"] == "minmax"
    lines, _ = describe(summary)
    assert "  int8     calibrated on 12 of 12 images of check (minmax, seed 0), tensorrt scheme; " in "\n".join(lines)
    graph = onnx.load(str(out)).graph
    initializers = {t.name: t for t in graph.initializer}
    points = [initializers[n.input[2]] for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
              and len(n.input) > 2 and n.input[2] in initializers]
    assert points and all(p.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.INT32) for p in points)
    assert not any(numpy_helper.to_array(p).any() for p in points)
    model, _ = artifact.load(pt)
    frames = generated_frames(model.contract, 8, seed=6)
    probs = OnnxModel(out, providers="cpu").predict(frames)
    assert (probs.argmax(1) == torch_probs(model, frames).argmax(1)).mean() * 100 >= AGREEMENT


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("socket-edge: error: ")
    return err


def test_bad_calibration_input_is_one_line_and_writes_nothing(int8_export, tmp_path, capsys):
    pt = int8_export[0]
    out = tmp_path / "bad.onnx"
    base = ["export", str(pt), "--out", str(out), "-q", "--int8"]
    assert "--int8 needs --calib DIR: target images" in _refused(base, capsys)
    (tmp_path / "empty").mkdir()
    assert "--calib folder" in _refused([*base, "--calib", str(tmp_path / "empty")], capsys)
    eight = tmp_path / "eight"
    eight.mkdir()
    cv2.imwrite(str(eight / "a.png"), np.full((32, 32), 90, np.uint8))
    assert "a.png is 8-bit; depth must be 16-bit" in _refused([*base, "--calib", str(eight)], capsys)
    assert "does not exist" in _refused([*base, "--calib", str(tmp_path / "missing")], capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eight", "empty"]  # no bad.onnx, no temporary file


@NEEDS_GPU
def test_int8_engine_is_built_from_the_symmetric_graph(int8_export, tmp_path):  # pragma: no cover - needs TensorRT
    from socket_edge.backends.engine import EngineModel

    pt, _, check = int8_export
    out = tmp_path / "m.engine"
    summary = exporter.export(pt, "engine", out=out, int8=True, calib=check, check_data=check)
    assert summary["precision"] == "int8" and summary["int8"]["scheme"] == "tensorrt"
    assert [r["precision"] for r in summary["parity"]] == ["fp32", "int8", "tensorrt int8"]
    assert summary["parity"][-1]["argmax_agreement"] >= AGREEMENT
    assert EngineModel(out).info.precision == "int8"
