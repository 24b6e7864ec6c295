"""`socket-edge export` to ONNX: parity with the PyTorch ensemble in a real ONNX Runtime session,
folding, metadata, batch handling, pruning, fp16, eval and inspect of the exported file."""

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from conftest import write_class_folders
from socket_edge.cli import main
from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError
from socket_edge.export import exporter
from socket_edge.export.fold import graph_ready
from socket_edge.export.parity import generated_frames
from socket_edge.modelfile import ModelInfo
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.zoo import ModelConfig, build
from socket_edge.backends.onnx import OnnxModel

CLASSES = ("bars", "blob", "ring")


def randomise_batchnorm(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so that folding them is really tested."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


def depth_ensemble(archs=("mobilenet_v3_small", "resnet18"), zeta=(1.0, 3.0), size=32) -> Ensemble:
    torch.manual_seed(0)
    contract = InputContract.for_modality("depth", CLASSES, size)
    members = [randomise_batchnorm(build(ModelConfig(arch, len(CLASSES)))) for arch in archs]
    return Ensemble(contract, members, list(zeta)).eval()


def torch_probs(model: Ensemble, frames: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(frames)).numpy()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A depth ensemble of two architectures with unequal ζ, saved and exported (dynamic batch)."""
    root = tmp_path_factory.mktemp("export")
    path = artifact.save(depth_ensemble(), root / "adapted.pt", "ensemble", artifact.provenance(stage="adapt", seed=4))
    summary = exporter.export(path)
    return path, root / "adapted.onnx", summary


@pytest.fixture(scope="module")
def small_pt(tmp_path_factory):
    """A one-member depth model (MobileNetV2: its ReLU6 is a Clip sharing constants with the input
    normalisation, which the fp16 conversion must keep apart), for fp16, fixed batch, failures."""
    root = tmp_path_factory.mktemp("small")
    return artifact.save(depth_ensemble(("mobilenet_v2",), (1.0,)), root / "small.pt", "source", {})


def test_folding_keeps_the_function_and_leaves_no_batchnorm():
    model = depth_ensemble(("mobilenet_v2", "resnet18"), (1.0, 1.0))
    folded, count = graph_ready(model)
    assert count == 53 + 21  # every BatchNorm2d, plus the paper head's BatchNorm1d per member
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in folded.modules())
    frames = generated_frames(model.contract, 4)
    np.testing.assert_allclose(torch_probs(folded, frames), torch_probs(model, frames), atol=1e-6)
    assert isinstance(model.members[0].classifier.parametrizations.weight.original0, nn.Parameter)  # original untouched


def test_onnx_graph_equals_the_ensemble_in_onnx_runtime(pair, depth_data):
    pt, onnx_path, summary = pair
    model, _ = artifact.load(pt)
    session = OnnxModel(onnx_path, providers="cpu", threads=2)
    real = exporter.parity.check_frames(model.contract, depth_data).frames
    for frames in (generated_frames(model.contract, 5, seed=1), real, real[:1]):  # batch 5, 24 real, 1
        probs = session.predict(frames)
        assert probs.dtype == np.float32 and probs.shape == (len(frames), 3)
        assert np.abs(probs - torch_probs(model, frames)).max() <= 1e-4
    assert summary["parity"][0]["max_abs_diff"] <= 1e-4 and summary["parity"][0]["ok"]
    assert summary["batchnorm_folded"] == 35 + 21 and summary["batchnorm_left"] == 0

    proto = onnx.load(str(onnx_path))
    assert not [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    (raw,), (probs,) = proto.graph.input, proto.graph.output
    assert (raw.name, raw.type.tensor_type.elem_type) == ("raw", onnx.TensorProto.FLOAT)
    assert [d.dim_param or d.dim_value for d in raw.type.tensor_type.shape.dim] == ["N", 1, 32, 32]
    assert [d.dim_param or d.dim_value for d in probs.type.tensor_type.shape.dim] == ["N", 3]
    info = ModelInfo.from_props({p.key: p.value for p in proto.metadata_props}, "adapted.onnx")
    assert info.contract == model.contract and info.source == "adapted.pt"
    assert info.zeta == pytest.approx((0.25, 0.75))
    assert [m["arch"] for m in info.members] == ["mobilenet_v3_small", "resnet18"]
    assert info.provenance["source"]["seed"] == 4 and info.provenance["export"]["parity"][0]["n"] == 32
    assert session.info == info


def test_the_onnx_backend_eval_and_inspect_need_no_torch(pair, tmp_path, capsys):
    """The edge path through the backends layer: an exported .onnx opened, evaluated and inspected
    with torch blocked gives the numbers the workstation gives."""
    from test_import_rules import run_without_torch

    data = write_class_folders(tmp_path / "depth", "depth", per_class=3)
    assert main(["eval", str(pair[1]), "--data", str(data), "--json", "-q"]) == 0
    expected = json.loads(capsys.readouterr().out)
    code = f"""
import json
import numpy as np
from socket_edge.backends import open_model
from socket_edge.cli import main
model = open_model({str(pair[1])!r}, providers="cpu", threads=1)
probs = model.predict(np.full((2, 1, 32, 32), 1500, np.float32))
assert probs.shape == (2, 3) and abs(float(probs.sum()) - 2) < 1e-4
assert (model.backend, model.detail, model.contract.modality) == ("onnxruntime", "CPU", "depth")
assert main(["inspect", {str(pair[1])!r}]) == 0
assert main(["eval", {str(pair[1])!r}, "--data", {str(data)!r}, "--json", "-q"]) == 0
assert "torch" not in sys.modules
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    inspected, evaluated = result.stdout.rsplit("\n{", 1)
    assert "classes       3: bars, blob, ring" in inspected and "ζ=0.750  resnet18" in inspected
    assert json.loads("{" + evaluated) == expected and expected["n"] == 9


def test_prune_zeta_drops_the_small_member_and_reports_accuracy(pair, tmp_path, capsys):
    pt, _, _ = pair
    check = write_class_folders(tmp_path / "check", "depth", per_class=4)
    out = tmp_path / "pruned.onnx"
    argv = ["export", str(pt), "--out", str(out), "--prune-zeta", "0.3", "--check-data", str(check), "--json", "-q"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    prune = summary["prune"]
    assert [d["arch"] for d in prune["dropped"]] == ["mobilenet_v3_small"]
    assert prune["zeta_before"] == pytest.approx([0.25, 0.75]) and prune["zeta_after"] == [1.0]

    model, _ = artifact.load(pt)
    pruned = Ensemble(model.contract, [model.members[1]], [1.0]).eval()
    frames = exporter.parity.check_frames(model.contract, check).frames
    labels = np.repeat(np.arange(3), 4)
    for key, reference in (("accuracy_before", model), ("accuracy_after", pruned)):
        assert prune[key] == pytest.approx(100 * (torch_probs(reference, frames).argmax(1) == labels).mean(), abs=0.01)
    session = OnnxModel(out, providers="cpu")
    assert session.info.zeta == (1.0,) and [m["arch"] for m in session.info.members] == ["resnet18"]
    assert np.abs(session.predict(frames) - torch_probs(pruned, frames)).max() <= 1e-4
    assert summary["parity"][0]["frames"] == f"12 images of {check}"


def test_pruning_every_member_is_refused(pair, tmp_path, capsys):
    assert main(["export", str(pair[0]), "--out", str(tmp_path / "x.onnx"), "--prune-zeta", "0.9"]) == 2
    assert "would drop every member (ζ = 0.250, 0.750); use a threshold at most 0.750" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_fp16_export_keeps_float32_io_and_reports_parity(small_pt, tmp_path, capsys):
    out = tmp_path / "half.onnx"
    assert main(["export", str(small_pt), "--fp16", "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "onnx fp16" in text and "parity   fp16 vs PyTorch on 32 generated depth frames: max |Δp|" in text
    session = OnnxModel(out, providers="cpu")
    assert session.session.get_inputs()[0].type == "tensor(float)" and session.info.precision == "fp16"
    proto = onnx.load(str(out))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    model, _ = artifact.load(small_pt)
    frames = generated_frames(model.contract, 8, seed=3)
    assert np.abs(session.predict(frames) - torch_probs(model, frames)).max() < 5e-3


def test_fixed_batch_graph_takes_any_number_of_frames(small_pt, tmp_path):
    out = tmp_path / "b2.onnx"
    summary = exporter.export(small_pt, out=out, batch=2, opset=13)
    assert summary["batch"] == "fixed 2"
    session = OnnxModel(out, providers="cpu")
    assert session.fixed_batch == 2 and session.session.get_inputs()[0].shape == [2, 1, 32, 32]
    model, _ = artifact.load(small_pt)
    frames = generated_frames(model.contract, 5, seed=2)
    np.testing.assert_allclose(session.predict(frames), torch_probs(model, frames), atol=1e-4)
    assert onnx.load(str(out)).opset_import[0].version == 13


def test_a_broken_export_writes_nothing(small_pt, tmp_path, monkeypatch):
    def nan(self, raw, batch_size=None):
        return np.full((len(raw), 3), np.nan, np.float32)

    monkeypatch.setattr(OnnxModel, "predict", nan)
    with pytest.raises(ArtifactError, match="NaN or infinite probabilities on 32 generated depth frames; nothing"):
        exporter.export(small_pt, out=tmp_path / "nan.onnx")
    assert list(tmp_path.iterdir()) == []


def test_eval_of_the_onnx_equals_eval_of_the_pt(trained_rgb, tmp_path, capsys):
    out = tmp_path / "src.onnx"
    assert main(["export", str(trained_rgb), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    test = write_class_folders(tmp_path / "test", "rgb", per_class=6, seed=9)
    results = []
    for model in (trained_rgb, out):
        assert main(["eval", str(model), "--data", str(test), "--json", "--device", "cpu"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert abs(results[0]["accuracy"] - results[1]["accuracy"]) <= 0.5 and results[1]["n"] == 18
    depth = write_class_folders(tmp_path / "depth", "depth", per_class=2)
    assert main(["eval", str(out), "--data", str(depth)]) == 1
    assert "expects rgb images but" in capsys.readouterr().err
    assert main(["eval", str(out), "--data", str(depth), "--modality", "depth"]) == 1
    err = capsys.readouterr().err
    assert "has its rgb input contract built into the graph" in err and len(err.strip().splitlines()) == 1


def test_inspect_reads_an_exported_onnx(pair, capsys):
    assert main(["inspect", str(pair[1])]) == 0
    text = capsys.readouterr().out
    assert "MB, onnx opset 17, fp32, ensemble)" in text and "raw float32 N×1×32×32 (batch any size)" in text
    assert "probs float32 N×3" in text and "ζ=0.750  resnet18 (paper head, 3 classes, 11.3" in text
    assert "depth, 1 mm per unit" in text and "parity    fp32: max |Δp|" in text
    assert main(["inspect", str(pair[1]), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["zeta"] == pytest.approx([0.25, 0.75]) and summary["graph"]["opset"] == 17
    assert summary["provenance"]["stage"] == "adapt" and summary["export"]["stage"] == "export"


def test_an_onnx_without_a_contract_is_refused(tmp_path, capsys):
    plain = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(nn.Conv2d(1, 3, 3), (torch.zeros(1, 1, 8, 8),), str(plain), dynamo=False,
                          input_names=["raw"], output_names=["probs"])
    with pytest.raises(ArtifactError, match="plain.onnx has no socket-edge input contract in its metadata"):
        OnnxModel(plain)
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(ArtifactError, match="junk.onnx is not a readable ONNX model"):
        OnnxModel(tmp_path / "junk.onnx")
    data = write_class_folders(tmp_path / "d", "depth", per_class=1)
    for path in (plain, tmp_path / "junk.onnx"):
        assert main(["eval", str(path), "--data", str(data)]) == 1
        assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("socket-edge: error: ") for line in err)
