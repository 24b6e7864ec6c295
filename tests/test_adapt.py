"""socket-edge adapt end to end on small self-made data, and the official code's defects."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import adapt_argv, assert_same_weights, write_class_folders
from socket_edge.adapt.config import AdaptConfig
from socket_edge.adapt.inputs import load_inputs, load_sources
from socket_edge.adapt.model import AdaptiveEnsemble, running_stats
from socket_edge.adapt.trainer import source_ti_features
from socket_edge.cli import main
from socket_edge.data.folders import ti_pairs
from socket_edge.models import artifact
from socket_edge.models.torch_utils import to_device

@pytest.mark.parametrize("method", ["none", "shot", "decision", "socket"])
def test_each_method_writes_an_ensemble_and_a_run_folder(setup, tmp_path, capsys, method):
    out = tmp_path / "adapted.pt"
    assert main(adapt_argv(setup, out, method)) == 0
    model, data = artifact.load(out)
    assert data["kind"] == "ensemble" and len(model.members) == 2
    assert model.contract.modality == "depth" and model.contract.class_names == ("bars", "blob", "ring")
    zeta = data["zeta"]
    assert sum(zeta) == pytest.approx(1.0)
    if method in ("none", "shot"):
        assert zeta == [0.5, 0.5]
    else:
        assert zeta != [0.5, 0.5]  # learned
    run = tmp_path / "adapted.pt-run"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == ([0] if method == "none" else [0, 1, 2])
    assert all("accuracy" in h for h in history)
    if method == "socket":
        assert {"l_ti", "l_d", "l_pl", "l_ent", "l_div"} <= set(history[-1])
    elif method != "none":
        assert "l_ti" not in history[-1] and "l_d" not in history[-1]
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG" and not (run / "checkpoint.pt").exists()
    assert json.loads((run / "config.json").read_text())["config"]["method"] == method
    # eval takes the ensemble artifact and agrees with the last epoch's accuracy
    capsys.readouterr()
    assert main(["eval", str(out), "--data", str(setup["depth"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(history[-1]["accuracy"], abs=0.01)
    prov = data["provenance"]
    assert prov["stage"] == "adapt" and prov["method"] == method and len(prov["metrics"]["epochs"]) == len(history)


def test_the_accuracy_says_whether_it_was_measured_on_frames_adapted_on(setup, tmp_path, capsys):
    """--eval-data the target itself: transductive (as in the paper); frames the adaptation never
    saw: inductive; a mix: how many were adapted on (by file, links resolved)."""
    held, mixed = tmp_path / "held", tmp_path / "mixed"
    for name in ("bars", "blob", "ring"):
        files = sorted((setup["depth"] / name).glob("*.png"))
        for folder, chosen in ((held, files[-2:]), (mixed, files[-3:])):
            (folder / name).mkdir(parents=True)
            for f in chosen:
                (folder / name / f.name).symlink_to(f)
    target = tmp_path / "target"  # the target without the held-out frames
    for name in ("bars", "blob", "ring"):
        (target / name).mkdir(parents=True)
        for f in sorted((setup["depth"] / name).glob("*.png"))[:-2]:
            (target / name / f.name).symlink_to(f)
    for eval_data, says in ((target, "(transductive: adapted on)"), (held, "(inductive: none adapted on)"),
                            (mixed, "(3 of 9 frames adapted on)")):
        out = tmp_path / f"{eval_data.name}.pt"
        assert main(adapt_argv(setup, out, "none", target=str(target), eval_data=str(eval_data))) == 0
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert f"% on --eval-data {says})" in line, line
        assert artifact.read(out)["provenance"]["metrics"]["eval"]["n"] == len(list(eval_data.rglob("*.png")))


def test_unadapted_ensemble_equals_the_mean_of_the_sources(setup, tmp_path):
    out = tmp_path / "none.pt"
    assert main(adapt_argv(setup, out, "none")) == 0
    ensemble, _ = artifact.load(out)
    raw = torch.rand(4, 1, 32, 32) * 4000
    probs = []
    for name in ("a", "b"):
        source, _ = artifact.load(setup[name])
        probs.append(source.with_contract(ensemble.contract)(raw))
    torch.testing.assert_close(ensemble(raw), (probs[0] + probs[1]) / 2)


def test_classifiers_stay_frozen_and_encoders_change(setup, tmp_path):
    out = tmp_path / "shot.pt"
    assert main(adapt_argv(setup, out, "shot", sources=("a",))) == 0
    adapted, _ = artifact.load(out)
    source, _ = artifact.load(setup["a"])
    for key, value in source.members[0].classifier.state_dict().items():
        torch.testing.assert_close(adapted.members[0].classifier.state_dict()[key], value)
    changed = [k for k, v in source.members[0].encoder.state_dict().items()
               if not torch.equal(v, adapted.members[0].encoder.state_dict()[k])]
    assert len(changed) > 10


def test_ti_batches_never_touch_running_statistics(setup):
    sources = load_sources([setup["a"]])
    model = AdaptiveEnsemble(sources.contract.retarget("depth"), sources.members, learn_zeta=True).train()
    before = [(m.clone(), v.clone()) for m, v in running_stats(model.members[0])]
    counts = [bn.num_batches_tracked.clone() for bn in model._bn[0]]
    momenta = [bn.momentum for bn in model._bn[0]]
    with model.frozen_bn_stats():
        feats = model.encode(torch.rand(8, 1, 32, 32) * 4000)
    assert feats[0].shape == (8, 256)
    for (m0, v0), (m1, v1) in zip(before, running_stats(model.members[0])):
        assert torch.equal(m0, m1) and torch.equal(v0, v1)
    assert all(torch.equal(c, bn.num_batches_tracked) for c, bn in zip(counts, model._bn[0]))
    assert [bn.momentum for bn in model._bn[0]] == momenta  # restored
    model.encode(torch.rand(8, 1, 32, 32) * 4000)  # a target batch outside the block does update them
    assert not torch.equal(before[0][0], running_stats(model.members[0])[0][0])




def test_source_features_use_the_sources_own_normalisation(setup):
    config = AdaptConfig(method="socket", modality="depth")
    sources = load_sources([setup["a"]])
    inputs = load_inputs(config, sources, setup["depth"], setup["ti_rgb"], setup["ti_depth"], None, progress=False)
    psi = source_ti_features(inputs, torch.device("cpu"))[0]
    trained, _ = artifact.load(setup["a"])  # the source exactly as train-source normalised its inputs
    with torch.no_grad():
        expected = trained.members[0].encoder(trained.input(to_device(inputs.ti_source, torch.device("cpu"))))
    torch.testing.assert_close(psi, expected)
    # and the target side keeps the source's network normalisation, only the raw units change
    assert inputs.target_contract.mean == trained.contract.mean and inputs.target_contract.std == trained.contract.std
    assert inputs.target_contract.unit == 0.001


def test_ti_pairs_are_matched_by_path_not_by_list_order(tmp_path):
    # sorted file lists disagree: x.c.png < x.png on one side, x.bmp < x.c.bmp on the other
    src, tgt = tmp_path / "src" / "street", tmp_path / "tgt" / "street"
    src.mkdir(parents=True)
    tgt.mkdir(parents=True)
    import cv2

    for stem, value in (("x", 10), ("x.c", 200)):
        cv2.imwrite(str(src / f"{stem}.png"), np.full((8, 8, 3), value, np.uint8))
        cv2.imwrite(str(tgt / f"{stem}.bmp"), np.full((8, 8), value, np.uint8))
    assert sorted(p.name for p in src.iterdir()) == ["x.c.png", "x.png"]
    assert sorted(p.name for p in tgt.iterdir()) == ["x.bmp", "x.c.bmp"]
    pairs = ti_pairs(tmp_path / "src", tmp_path / "tgt")
    for a, b in zip(pairs.source.files, pairs.target.files):
        assert cv2.imread(str(a))[0, 0, 0] == cv2.imread(str(b), cv2.IMREAD_UNCHANGED)[0, 0]


def test_the_artifact_is_a_copy_of_the_final_weights_not_an_alias():
    from socket_edge.contract import InputContract
    from socket_edge.models.ensemble import Ensemble
    from socket_edge.models.zoo import ModelConfig, build

    model = Ensemble(InputContract.for_modality("depth", ["a", "b"], 32), [build(ModelConfig("mobilenet_v3_small", 2))], [1])
    saved = artifact.to_artifact(model, "ensemble", {})
    key = next(k for k in saved["members"][0]["state_dict"] if k.endswith("weight"))
    before = saved["members"][0]["state_dict"][key].clone()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert torch.equal(saved["members"][0]["state_dict"][key], before)


def test_bad_inputs_are_refused_with_one_line(setup, tmp_path, capsys):
    out = tmp_path / "x.pt"
    other = write_class_folders(tmp_path / "other_rgb", "rgb", per_class=3, classes=("bars", "zebra", "ring"))
    c = tmp_path / "c.pt"
    assert main(["train-source", "--data", str(other), "--arch", "mobilenet_v3_small", "--weights", "none",
                 "--out", str(c), "--epochs", "1", "--img-size", "32", "-q"]) == 0
    capsys.readouterr()
    cases = [
        (adapt_argv(setup, out, "shot", sources=("a", str(c))), 1, "all sources must share the same class names"),
        (adapt_argv(setup, out, ti_source=None), 2, "needs TI pairs"),
        (adapt_argv(setup, out, "shot", ti_source=str(setup["ti_rgb"])), 2, "--ti-source without --ti-target"),
        (adapt_argv(setup, out, "shot", modality="rgb"), 2, "SOCKET transfers across modalities"),
    ]
    for argv, code, words in cases:
        assert main(argv) == code
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    # TI classes that are task classes, and a target holding classes the sources do not know
    overlap = write_class_folders(tmp_path / "ti_overlap_rgb", "rgb", per_class=2, classes=("blob", "water"))
    overlap_d = write_class_folders(tmp_path / "ti_overlap_d", "depth", per_class=2, classes=("blob", "water"))
    assert main(adapt_argv(setup, out, ti_source=str(overlap), ti_target=str(overlap_d))) == 1
    assert "contain task classes blob" in capsys.readouterr().err
    assert main(adapt_argv(setup, out, "shot", target=str(setup["ti_depth"]))) == 1
    assert "classes the model does not know: street, water" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "x.pt-run").exists()


@pytest.mark.timeout(900)  # two adapt processes, each with its own 300 s guard; ~20 s on an idle machine
def test_killed_run_resumes_to_the_same_weights(setup, tmp_path):
    """The straight run in this process, the killed and the resumed one in their own: one thread each (conftest), so
    one order of float sums and the same weights bit for bit."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "socket_edge"]
    straight, resumed = tmp_path / "straight.pt", tmp_path / "resumed.pt"
    epochs = 2
    assert torch.get_num_threads() == 1 and env["OMP_NUM_THREADS"] == "1"
    assert main(adapt_argv(setup, straight, epochs=epochs)) == 0
    proc = subprocess.Popen(cmd + adapt_argv(setup, resumed, epochs=epochs), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "resumed.pt-run" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (tmp_path / "resumed.pt-run" / "checkpoint.pt").exists():  # epoch 1 saved (whole or not at all)
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not resumed.exists() and (tmp_path / "resumed.pt-run" / "checkpoint.pt").exists()
    done = subprocess.run(cmd + adapt_argv(setup, resumed, epochs=epochs) + ["--resume"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    assert_same_weights(straight, resumed)
    history = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(epochs + 1))


def test_zeta_is_normalised_so_the_losses_cannot_shrink_it(setup):
    sources = load_sources([setup["a"], setup["b"]])
    model = AdaptiveEnsemble(sources.contract.retarget("depth"), sources.members, learn_zeta=True)
    for value in (0.0, 3.0, -3.0):
        with torch.no_grad():
            model.w.fill_(value)
        torch.testing.assert_close(model.zeta(), torch.tensor([0.5, 0.5]))
    # every loss sees weights that sum to 1: scaling all of them down is impossible
    with torch.no_grad():
        model.w.copy_(torch.tensor([-5.0, 2.0]))
    assert model.zeta().sum().item() == pytest.approx(1.0)
