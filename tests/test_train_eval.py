"""train-source → eval → inspect through the CLI, on small self-made data."""

import json

import cv2
import numpy as np
import pytest
import torch

from conftest import needs_imagenet, offline_imagenet_mobilenet_v2, write_class_folders
from socket_edge.cli import main
from socket_edge.data.folders import class_folders
from socket_edge.data.loading import load_frames
from socket_edge.models import artifact


@needs_imagenet
def test_imagenet_source_learns_and_eval_reports_it(tmp_path, capsys):
    data = write_class_folders(tmp_path / "rgb", "rgb", per_class=12, size=48)
    out = tmp_path / "src.pt"
    argv = ["train-source", "--data", str(data), "--arch", "mobilenet_v2", "--weights",
            str(offline_imagenet_mobilenet_v2()), "--out", str(out), "--epochs", "3", "--img-size", "48",
            "--batch-size", "8", "--seed", "1", "-q"]
    assert main(argv) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    _, data_dict = artifact.load(out)
    prov = data_dict["provenance"]
    assert prov["command"] == "socket-edge " + " ".join(argv) and prov["seed"] == 1
    assert prov["data"]["per_class"] == {"bars": 12, "blob": 12, "ring": 12}
    assert prov["metrics"]["val_n"] == 3 and len(prov["metrics"]["epochs"]) == 3
    test = write_class_folders(tmp_path / "test", "rgb", per_class=10, size=48, seed=5)
    assert main(["eval", str(out), "--data", str(test), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # chance is 33.3; 3 epochs on 36 images end where float noise (CPU, threads) takes them: over data seeds
    # 0/4 and training seeds 1/2/3 on 1 and 2 threads at 76.7–100 %, so the bound is well below that
    assert result["n"] == 30 and result["accuracy"] >= 60.0


def test_eval_json_equals_a_hand_computed_accuracy(trained_rgb, tmp_path, capsys):
    test = write_class_folders(tmp_path / "test", "rgb", per_class=6, seed=9)
    assert main(["eval", str(trained_rgb), "--data", str(test), "--json", "--plot", str(tmp_path / "cm.png")]) == 0
    result = json.loads(capsys.readouterr().out)
    model, _ = artifact.load(trained_rgb)
    images = class_folders(test)
    with torch.no_grad():
        probs = model(torch.from_numpy(load_frames(images.files, model.contract, progress=False))).numpy()
    preds = probs.argmax(1)
    labels = np.array(images.labels)
    assert result["accuracy"] == pytest.approx(100 * (preds == labels).mean(), abs=0.01)
    assert result["n"] == 18 and set(result["per_class"]) == {"bars", "blob", "ring"}
    for i, name in enumerate(("bars", "blob", "ring")):
        assert result["per_class"][name] == pytest.approx(100 * (preds[labels == i] == i).mean(), abs=0.01)
    assert np.array(result["confusion"]).sum() == 18
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_on_a_subset_of_classes_maps_labels_by_name(trained_rgb, tmp_path, capsys):
    test = write_class_folders(tmp_path / "test", "rgb", per_class=4, classes=("ring",))
    assert main(["eval", str(trained_rgb), "--data", str(test), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["per_class"]) == ["ring"] and result["accuracy"] == result["per_class"]["ring"]


def test_eval_refuses_the_wrong_modality_and_unknown_classes(trained_rgb, tmp_path, capsys):
    depth = write_class_folders(tmp_path / "depth", "depth", per_class=2)
    assert main(["eval", str(trained_rgb), "--data", str(depth)]) == 1
    assert "expects rgb images but" in capsys.readouterr().err
    other = write_class_folders(tmp_path / "other", "rgb", per_class=2, classes=("bars", "zebra"))
    assert main(["eval", str(trained_rgb), "--data", str(other)]) == 1
    assert "classes the model does not know: zebra" in capsys.readouterr().err


def test_depth_model_refuses_rgb_and_reads_other_units(tmp_path, capsys):
    depth = write_class_folders(tmp_path / "depth", "depth", per_class=4)
    model = tmp_path / "depth.pt"
    assert main(["train-source", "--data", str(depth), "--modality", "depth", "--arch", "mobilenet_v3_small",
                 "--weights", "none", "--out", str(model), "--epochs", "1", "--img-size", "32", "-q"]) == 0
    rgb = write_class_folders(tmp_path / "rgb", "rgb", per_class=2)
    assert main(["eval", str(model), "--data", str(rgb)]) == 1
    assert "expects depth images but" in capsys.readouterr().err
    capsys.readouterr()
    # the same depth frames stored in 0.1 mm units give the same result with --depth-scale
    tenth = tmp_path / "tenth"
    for path in depth.rglob("*.png"):
        frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.uint32) * 10
        target = tenth / path.relative_to(depth)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), np.minimum(frame, 65535).astype(np.uint16))
    assert main(["eval", str(model), "--data", str(depth), "--json"]) == 0
    mm = json.loads(capsys.readouterr().out)
    assert main(["eval", str(model), "--data", str(tenth), "--json", "--depth-scale", "0.0001"]) == 0
    assert json.loads(capsys.readouterr().out)["confusion"] == mm["confusion"]


def test_unadapted_cross_modal_eval_uses_the_target_units(trained_rgb, tmp_path, capsys):
    depth = write_class_folders(tmp_path / "depth", "depth", per_class=3)
    assert main(["eval", str(trained_rgb), "--data", str(depth), "--modality", "depth", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["modality"], result["trained_on"], result["n"]) == ("depth", "rgb", 9)
    model, _ = artifact.load(trained_rgb)
    target = model.contract.retarget("depth")
    assert target.unit == 0.001 and target.invalid_zero and target.mean == model.contract.mean
    images = class_folders(depth)
    with torch.no_grad():
        probs = model.with_contract(target)(torch.from_numpy(load_frames(images.files, target, progress=False)))
    assert result["accuracy"] == pytest.approx(100 * (probs.numpy().argmax(1) == np.array(images.labels)).mean(), abs=0.01)
