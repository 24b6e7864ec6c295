"""adapt --repeats K: K adaptations with seeds SEED … SEED+K−1 merged into one model whose prediction is
the mean of theirs; each repeat a run of its own, reused or continued by the same command."""

import numpy as np
import torch
from conftest import adapt_argv, assert_same_weights

from socket_edge.adapt.config import AdaptConfig
from socket_edge.adapt.select import candidates
from socket_edge.backends import open_model
from socket_edge.cli import main
from socket_edge.data.folders import class_folders
from socket_edge.data.loading import load_frames
from socket_edge.evaluation import evaluate
from socket_edge.models import artifact


def test_repeats_merge_k_adaptations_into_one_model_that_predicts_their_mean(setup, tmp_path, capsys):
    out = tmp_path / "adapted.pt"
    argv = adapt_argv(setup, out, "socket", epochs=1, repeats="2", seed="4")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "adapted.pt.repeats"
    parts = [folder / "seed-4.pt", folder / "seed-5.pt"]
    merged = torch.load(out, weights_only=True)
    repeats = [torch.load(p, weights_only=True) for p in parts]
    assert [r["provenance"]["config"]["seed"] for r in repeats] == [4, 5]
    assert {r["provenance"]["config"]["repeats"] for r in repeats} == {1}
    assert merged["provenance"]["config"]["repeats"] == 2 and merged["provenance"]["seed"] == 4
    assert len(merged["members"]) == 4  # two sources, two repeats
    assert np.allclose(merged["zeta"], [z / 2 for r in repeats for z in r["zeta"]], atol=1e-6)
    for got, want in zip(merged["members"], [m for r in repeats for m in r["members"]]):
        assert all(torch.equal(got["state_dict"][k], want["state_dict"][k]) for k in want["state_dict"])
    model = open_model(out)
    images = class_folders(setup["depth"], "eval")
    frames = load_frames(images.files, model.contract, progress=False)
    mean = np.mean([open_model(p).predict(frames) for p in parts], axis=0)
    assert np.allclose(model.predict(frames), mean, atol=1e-5)
    each = [r["provenance"]["metrics"]["accuracy"] for r in repeats]
    accuracy = merged["provenance"]["metrics"]["accuracy"]
    assert accuracy == evaluate(out, setup["depth"], progress=False)["accuracy"]
    assert "2 repeats (seeds 4–5) averaged: 4 members" in printed
    assert f"{each[0]:.1f} / {each[1]:.1f}% each → {accuracy:.1f}% averaged" in printed
    assert [r["seed"] for r in merged["provenance"]["repeats"]] == [4, 5]
    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"repeats   2 adaptations averaged (seeds 4, 5; accuracy each {each[0]:.1f} / {each[1]:.1f})" in shown
    assert shown.count("ζ=") == 4

    # the same command again: finished repeats are reused, a missing one runs; the merged weights are the same
    first = tmp_path / "first.pt"
    first.write_bytes(out.read_bytes())
    parts[1].unlink()
    assert main(argv + ["--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "repeat seed-4: finished earlier, reused" in printed and "repeat seed-5: running" in printed
    assert_same_weights(first, out)
    parts[0].write_bytes(parts[0].read_bytes()[:1000])  # a repeat's output cut short (a full disk, a bad copy)
    assert main(argv + ["--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "repeat seed-4: running" in printed and "repeat seed-5: finished earlier, reused" in printed
    assert_same_weights(first, out)


def test_a_repeated_model_exports_to_one_graph_with_parity(setup, tmp_path):
    out = tmp_path / "adapted.pt"
    assert main(adapt_argv(setup, out, "shot", epochs=1, repeats="2", sources=("a",), eval_data=None)) == 0
    onnx = tmp_path / "adapted.onnx"
    assert main(["export", str(out), "--out", str(onnx), "-q"]) == 0
    torch_model, onnx_model = open_model(out), open_model(onnx)
    assert len(artifact.read(out)["members"]) == 2
    frames = load_frames(class_folders(setup["depth"], "eval").files[:8], torch_model.contract, progress=False)
    assert np.abs(torch_model.predict(frames) - onnx_model.predict(frames)).max() < 1e-4


def test_repeats_refuse_bad_input_with_one_line(setup, tmp_path, capsys):
    out = tmp_path / "adapted.pt"
    out.write_bytes(b"earlier")
    cases = [
        (adapt_argv(setup, out, "socket", repeats="2"), "pass --overwrite"),
        (adapt_argv(setup, tmp_path / "n.pt", "none", repeats="2"), "drop --repeats"),
        (adapt_argv(setup, tmp_path / "n.pt", "socket", repeats="0"), "must be at least 1"),
        (adapt_argv(setup, tmp_path / "n.pt", "socket", repeats="17"), "at most 16"),
        (adapt_argv(setup, tmp_path / "n.pt", "socket", repeats="2.5"), "--repeats: expected a whole number, got '2.5'"),
    ]
    select = adapt_argv(setup, tmp_path / "n.pt", "socket", select="auto", repeats="2")
    at = select.index("--method")
    cases.append((select[:at] + select[at + 2:], "drop --repeats 2"))
    for argv, words in cases:
        try:
            code = main(argv)
        except SystemExit as parser_exit:  # argparse refuses a --repeats that is not a whole number in 1…16
            code = parser_exit.code
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert out.read_bytes() == b"earlier"
    assert not (tmp_path / "adapted.pt.repeats").exists() and not (tmp_path / "n.pt.repeats").exists()


def test_select_auto_scores_single_runs():
    assert AdaptConfig.for_method("socket").repeats == 1
    chosen = candidates(AdaptConfig.for_method("socket", repeats=3), sources=1)
    assert {c.repeats for c in chosen.values()} == {1}
