"""Issue 17: the label-free validators, the input adapter (its gradient routing and its exact fold
into the exported graph) and `adapt --select auto`."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import adapt_argv
from socket_edge.adapt.inputs import load_sources
from socket_edge.adapt.model import AdaptiveEnsemble
from socket_edge.adapt.config import AdaptConfig
from socket_edge.adapt.select import DEFAULT_VALIDATOR, candidates, rank, scores
from socket_edge.adapt.validators import holdout, snd, ti_consistency
from socket_edge.backends.onnx import OnnxModel
from socket_edge.cli import main
from socket_edge.export import exporter
from socket_edge.export.parity import generated_frames
from socket_edge.models import artifact


def test_snd_is_higher_for_clustered_than_for_uniform_features():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    clustered = torch.tensor(np.repeat(centres, 20, axis=0) + rng.normal(0, 0.01, (120, 16)))
    uniform = torch.tensor(rng.normal(size=(120, 16)))
    # six tight clusters of 20: each row's soft neighbourhood is its 19 cluster mates, entropy ≈ log 19
    assert snd(clustered) == pytest.approx(math.log(19), abs=0.05)
    assert snd(uniform) < snd(clustered) - 0.5
    # every row alike: the softmax over the N − 1 others is uniform, its entropy log(N − 1)
    assert snd(torch.ones(10, 4)) == pytest.approx(math.log(9), abs=1e-5)


def test_ti_consistency_is_full_agreement_and_zero_kl_for_the_same_predictions():
    probs = torch.softmax(torch.randn(12, 6, generator=torch.Generator().manual_seed(1)), dim=1)
    same = ti_consistency([probs, probs], torch.tensor([0.3, 0.7]), probs)
    assert same == {"ti_agree": 1.0, "ti_kl": 0.0}
    shifted = probs.roll(1, dims=1)  # every prediction moved to the next class
    other = ti_consistency([probs], torch.tensor([1.0]), shifted)
    assert other["ti_agree"] == 0.0 and other["ti_kl"] > 0.1


def test_the_ti_hold_out_is_a_fixed_fifth_by_file_name():
    keys = [f"street/{i:03d}" for i in range(30)] + [f"water/{i:03d}" for i in range(20)]
    held = holdout(keys)
    assert sum(held) == 10
    assert holdout(list(reversed(keys))) == list(reversed(held))  # by name, not by position
    assert holdout(["a"]) == [False] and sum(holdout(["a", "b"])) == 1


def _adapter_model(setup) -> AdaptiveEnsemble:
    sources = load_sources([setup["a"], setup["b"]])
    model = AdaptiveEnsemble(sources.contract.retarget("depth"), sources.members, True, adapter=True)
    with torch.no_grad():
        for adapter in model.adapters:
            adapter.mix.weight.add_(torch.randn_like(adapter.mix.weight) * 0.3)
        model.w.copy_(torch.tensor([0.4, -0.2]))
    return model


def test_the_cross_modal_terms_train_the_adapter_and_the_target_terms_the_encoders(setup):
    model = _adapter_model(setup).train()
    raw = torch.rand(6, 1, 32, 32) * 4000
    encoder = [p for p in model.members[0].encoder.parameters() if p.requires_grad]
    adapter = list(model.adapters[0].parameters())

    def grads(loss: torch.Tensor) -> tuple[bool, bool]:
        model.zero_grad(set_to_none=True)
        loss.backward()
        touched = lambda params: any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)  # noqa: E731
        return touched(encoder), touched(adapter)

    with model.recording_bn_stats() as stats:
        feats, probs, ti_feats = model(raw, torch.rand(6, 1, 32, 32) * 4000)
    # a target term (an entropy, as L_ent: a function of the probabilities that is not constant, since each
    # row of a softmax sums to 1)
    assert grads(sum((p * torch.log(p + 1e-8)).sum() for p in probs)) == (True, False)
    with model.recording_bn_stats() as stats:
        model(raw)
        assert grads(sum(m.sum() + v.sum() for m, v in stats[0])) == (False, True)  # L_d's statistics
    feats, probs, ti_feats = model(raw, torch.rand(6, 1, 32, 32) * 4000)
    assert grads(ti_feats[0].pow(2).mean()) == (False, True)  # L_TI


def test_the_adapter_folds_into_the_exported_graph_with_parity(setup, tmp_path):
    model = _adapter_model(setup).eval()
    ensemble = model.to_ensemble().eval()
    frames = generated_frames(model.contract, 6, seed=2)
    with torch.no_grad():
        adapted = model.mix(model(torch.from_numpy(frames))[1]).numpy()
        folded = ensemble(torch.from_numpy(frames)).numpy()
    assert np.abs(adapted - folded).max() < 1e-5
    path = artifact.save(ensemble, tmp_path / "adapted.pt", "ensemble", {})
    exporter.export(path)
    onnx_probs = OnnxModel(tmp_path / "adapted.onnx", providers="cpu", threads=1).predict(frames)
    assert np.abs(onnx_probs - adapted).max() < 1e-5


def select_argv(setup, out, method: str = "socket", **options) -> list[str]:
    """adapt_argv for --select auto: without --method."""
    argv = adapt_argv(setup, out, method, select="auto", **options)
    at = argv.index("--method")
    return argv[:at] + argv[at + 2:]


def test_the_candidates_keep_the_users_settings_and_the_base_drops_what_only_socket_takes():
    chosen = candidates(AdaptConfig.for_method("socket", ti_schedule="cosine", d_schedule="cosine", ti_warmup=0.2,
                                               lr=0.005), sources=2)
    assert chosen["base"].method == "decision"  # it has neither L_TI nor L_d
    assert chosen["base"].ti_schedule == chosen["base"].d_schedule == "constant" and chosen["base"].ti_warmup == 0
    assert chosen["socket"].ti_warmup == chosen["socket-adapter"].ti_warmup == 0.2
    assert chosen["socket"].ti_schedule == chosen["socket-adapter"].ti_schedule == "cosine"
    assert chosen["socket"].d_schedule == chosen["socket-adapter"].d_schedule == "cosine"
    assert chosen["socket-adapter"].ti_adapter and not chosen["socket"].ti_adapter
    assert {c.lr for c in chosen.values()} == {0.005}
    plus = candidates(AdaptConfig.for_method("socket-plus", bn_distance="kl"), sources=1)  # beyond socket-plus's preset
    assert plus["base"].method == "shot" and plus["socket"].bn_distance == "kl"
    assert {c.repeats for c in plus.values()} == {1}  # each candidate is one adaptation: its epochs are scored
    assert {c.method for c in plus.values()} == {"shot", "socket"}


def test_select_auto_ranks_by_eval_data_says_why_and_reuses_finished_candidates(setup, tmp_path, capsys):
    out = tmp_path / "chosen.pt"
    argv = select_argv(setup, out, epochs=1)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "chosen.pt.candidates"
    accuracy = {}
    for name in ("base", "socket", "socket-adapter"):
        lines = (folder / f"{name}.pt-run" / "metrics.jsonl").read_text().splitlines()
        accuracy[name] = json.loads(lines[-1])["accuracy"]
        assert {"snd", "ti_agree", "ti_kl", "im"} <= set(json.loads(lines[-1]))
    configs = {n: json.loads((folder / f"{n}.pt-run" / "config.json").read_text())["config"] for n in accuracy}
    assert configs["base"]["method"] == "decision" and configs["socket"]["method"] == "socket"
    assert configs["socket-adapter"]["ti_adapter"] and not configs["base"]["ti_adapter"]
    metrics = {n: artifact.read(folder / f"{n}.pt")["provenance"]["metrics"] for n in accuracy}
    label_free = {n: scores(m)[DEFAULT_VALIDATOR] for n, m in metrics.items()}  # what ranks without --eval-data
    assert [label_free[n] for n in rank(metrics, DEFAULT_VALIDATOR)] == sorted(label_free.values(), reverse=True)
    best = max(accuracy.values())
    winner = next(n for n, a in accuracy.items() if a == best)  # ties: the first, the base
    assert f"kept {winner}: the highest accuracy on --eval-data" in printed
    assert out.read_bytes() == (folder / f"{winner}.pt").read_bytes()
    assert main(argv + ["--overwrite"]) == 0
    assert capsys.readouterr().out.count("finished earlier, reused") == 3


def test_select_auto_refuses_bad_input_with_one_line(setup, tmp_path, capsys):
    out = tmp_path / "chosen.pt"
    out.write_bytes(b"earlier")
    cases = [
        (select_argv(setup, out), "--overwrite"),
        (adapt_argv(setup, tmp_path / "n.pt", "socket", select="auto"), "drop --method"),
        (select_argv(setup, tmp_path / "n.pt", "shot"), "needs TI pairs"),
        (select_argv(setup, tmp_path / "n.pt", select_by="snd"), "ranked by the accuracy on it"),
        (adapt_argv(setup, tmp_path / "n.pt", select_by="snd"), "--select-by needs --select auto"),
    ]
    for argv, words in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert out.read_bytes() == b"earlier" and not (tmp_path / "n.pt.candidates").exists()
