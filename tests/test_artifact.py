import json

import numpy as np
import pytest
import torch

from socket_edge.cli import main
from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.zoo import ModelConfig, build


def small_ensemble(zeta=(1.0,)) -> Ensemble:
    torch.manual_seed(0)
    contract = InputContract.for_modality("depth", ["a", "b", "c"], 32)
    members = [build(ModelConfig("mobilenet_v3_small", 3)) for _ in zeta]
    return Ensemble(contract, members, list(zeta)).eval()


def test_roundtrip_gives_identical_outputs_and_plain_data(tmp_path):
    model = small_ensemble((1.0, 3.0))
    path = artifact.save(model, tmp_path / "m.pt", "ensemble", artifact.provenance(seed=7, metrics={"x": np.float64(1.5)}))
    raw = torch.load(path, weights_only=True)  # nothing that needs unpickling of code
    assert raw["format"] == "socket-edge-model" and raw["kind"] == "ensemble" and raw["zeta"] == [0.25, 0.75]
    assert raw["provenance"]["metrics"]["x"] == 1.5 and raw["provenance"]["seed"] == 7
    loaded, _ = artifact.load(path)
    x = torch.rand(2, 1, 32, 32) * 5000
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.contract == model.contract


def test_ensemble_is_the_zeta_weighted_mean_of_softmaxes():
    model = small_ensemble((1.0, 3.0))
    x = torch.rand(2, 1, 32, 32) * 5000
    p = [torch.softmax(logits, 1) for logits in model.member_logits(x)]
    torch.testing.assert_close(model(x), 0.25 * p[0] + 0.75 * p[1])
    torch.testing.assert_close(model(x).sum(1), torch.ones(2))


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        artifact.read(tmp_path / "none.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ArtifactError, match="empty"):
        artifact.read(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="is not a PyTorch file"):
        artifact.read(tmp_path / "junk.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "sd.pt")
    with pytest.raises(ArtifactError, match="not a socket-edge model"):
        artifact.read(tmp_path / "sd.pt")
    data = artifact.to_artifact(small_ensemble(), "source", {})
    torch.save({**data, "format_version": 99}, tmp_path / "new.pt")
    with pytest.raises(ArtifactError, match="newer than this socket-edge"):
        artifact.read(tmp_path / "new.pt")


def test_inspect_text_and_json(tmp_path, capsys):
    path = artifact.save(small_ensemble(), tmp_path / "m.pt", "source", artifact.provenance(seed=3))
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "depth, 1 mm per unit" in text and "classes       3: a, b, c" in text
    assert "mobilenet_v3_small (paper head" in text and "seed      3" in text
    assert main(["inspect", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["contract"]["modality"] == "depth" and summary["zeta"] == [1.0]
    assert summary["members"][0]["parameters"] > 1_000_000
    assert main(["inspect", str(tmp_path / "nope.pt")]) == 1
