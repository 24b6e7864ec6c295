"""A MobileNetV2 without some of its residual blocks: fewer parameters, the same shapes, an ordinary
artifact (saved, loaded, exported to ONNX), a distillation start holding the teacher's kept weights,
and one clear error for blocks that cannot be dropped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from socket_edge.cli import main
from socket_edge.contract import InputContract
from socket_edge.distill.config import DistillConfig
from socket_edge.distill.student import start_student
from socket_edge.export import exporter
from socket_edge.export.parity import generated_frames
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.zoo import ModelConfig, blocks_to_drop, build, drop_order, residual_blocks
from socket_edge.backends.onnx import OnnxModel

CLASSES = ("bars", "blob", "ring")
DROPPED = (3, 6, 10, 13, 16)  # --drop-blocks 5: the last residual block of each stage


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_dropping_blocks_removes_their_parameters_and_keeps_the_shapes():
    torch.manual_seed(0)
    full = build(ModelConfig("mobilenet_v2", 3)).eval()
    short = build(ModelConfig("mobilenet_v2", 3, dropped_blocks=[16, 3, 6, 13, 10])).eval()
    assert short.config.dropped_blocks == DROPPED  # sorted tuple, from a list as an artifact stores it
    features = full.encoder[0].features
    assert n_params(short) == n_params(full) - sum(n_params(features[i]) for i in DROPPED)
    assert all(isinstance(short.encoder[0].features[i], nn.Identity) for i in DROPPED)
    assert not isinstance(short.encoder[0].features[5], nn.Identity)
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        assert short(x).shape == full(x).shape == (2, 3)
    assert blocks_to_drop("mobilenet_v2", 5) == DROPPED
    assert drop_order("mobilenet_v2") == (16, 13, 10, 6, 3, 15, 12, 9, 5, 8)
    assert sorted(drop_order("mobilenet_v2")) == list(residual_blocks("mobilenet_v2"))


def test_every_residual_block_is_an_identity_skip():
    features = build(ModelConfig("mobilenet_v2", 3)).encoder[0].features
    flagged = tuple(i for i, block in enumerate(features) if getattr(block, "use_res_connect", False))
    assert residual_blocks("mobilenet_v2") == flagged


def depth_model(dropped: tuple[int, ...], size: int = 32) -> Ensemble:
    torch.manual_seed(1)
    contract = InputContract.for_modality("depth", CLASSES, size)
    return Ensemble(contract, [build(ModelConfig("mobilenet_v2", 3, dropped_blocks=dropped))], [1.0]).eval()


def test_the_artifact_round_trips_and_plain_artifacts_stay_version_1(tmp_path):
    model = depth_model(DROPPED)
    path = artifact.save(model, tmp_path / "short.pt", "ensemble", artifact.provenance(stage="distill"))
    data = torch.load(path, weights_only=True)
    assert data["format_version"] == 2 and data["members"][0]["config"]["dropped_blocks"] == list(DROPPED)
    loaded, _ = artifact.load(path)
    assert loaded.members[0].config == model.members[0].config
    frames = torch.from_numpy(generated_frames(model.contract, 4))
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), model(frames), rtol=0, atol=0)
    plain = artifact.save(depth_model(()), tmp_path / "plain.pt", "ensemble", artifact.provenance(stage="distill"))
    data = torch.load(plain, weights_only=True)
    assert data["format_version"] == 1 and "dropped_blocks" not in data["members"][0]["config"]
    assert artifact.load(plain)[0].members[0].config.dropped_blocks == ()


def test_the_exported_onnx_matches_torch(tmp_path):
    model = depth_model(DROPPED)
    path = artifact.save(model, tmp_path / "short.pt", "ensemble", artifact.provenance(stage="distill"))
    summary = exporter.export(path)
    assert summary["parity"][0]["ok"] and summary["parity"][0]["max_abs_diff"] <= 1e-4
    session = OnnxModel(tmp_path / "short.onnx", providers="cpu", threads=1)
    assert session.info.members[0]["dropped_blocks"] == list(DROPPED)
    frames = generated_frames(model.contract, 3, seed=2)
    with torch.no_grad():
        expected = model(torch.from_numpy(frames)).numpy()
    assert np.abs(session.predict(frames) - expected).max() <= 1e-4


def test_the_teacher_start_copies_the_kept_weights_and_draws_no_random_numbers():
    torch.manual_seed(2)
    contract = InputContract.for_modality("depth", CLASSES, 32)
    members = [build(ModelConfig("mobilenet_v2", 3)) for _ in range(2)]
    teacher = Ensemble(contract, members, [0.3, 0.7])
    rng = torch.get_rng_state()
    start = start_student(DistillConfig(arch="mobilenet_v2", weights="teacher", dropped_blocks=(16, 3)), teacher)
    assert torch.equal(torch.get_rng_state(), rng)
    assert start.member.config.dropped_blocks == (3, 16) and "member 2" in start.note and "3, 16" in start.note
    source, copied = teacher.members[1].state_dict(), start.member.state_dict()
    left_out = {name.split(".")[3] for name in set(source) - set(copied)}  # encoder.0.features.<i>.…
    assert left_out == {"3", "16"} and set(copied) < set(source)
    for name, value in copied.items():
        assert torch.equal(value, source[name]) and value.data_ptr() != source[name].data_ptr(), name


@pytest.mark.parametrize("options, words", [
    (["--arch", "mobilenet_v2", "--drop-features", "3,4"], "must be distinct residual blocks of mobilenet_v2"),
    (["--arch", "mobilenet_v2", "--drop-features", "17"], "17 is not one"),
    (["--arch", "mobilenet_v2", "--drop-features", "6,6"], "an index is repeated"),
    (["--arch", "mobilenet_v2", "--drop-blocks", "11"], "has 10 residual blocks that can be dropped (0 to 10)"),
    (["--arch", "resnet18", "--drop-blocks", "2"], "only mobilenet_v2 can drop blocks, not resnet18"),
    (["--arch", "mobilenet_v3_small", "--drop-features", "3"], "only mobilenet_v2 can drop blocks"),
])
def test_blocks_that_cannot_be_dropped_are_one_line_and_nothing_is_written(tmp_path, capsys, options, words):
    argv = ["distill", str(tmp_path / "adapted.pt"), "--target", str(tmp_path), "--out", str(tmp_path / "s.pt")]
    assert main([*argv, *options]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []

