"""The levers of socket-plus (issue 7): each on a hand-computed case, then the method end to end."""

import json
import math

import pytest
import torch

from socket_edge.adapt.bn_alignment import BNStatsLoss
from socket_edge.adapt.config import PRESETS, AdaptConfig
from socket_edge.adapt.inputs import load_sources
from socket_edge.adapt.model import AdaptiveEnsemble, running_stats
from socket_edge.adapt.neighbourhood import NeighbourhoodConsistencyLoss, ensemble_features
from socket_edge.adapt.selection import better, target_scores
from socket_edge.cli import main
from socket_edge.errors import UsageError
from socket_edge.models import artifact
from conftest import adapt_argv


def test_bn_loss_on_the_early_layers_only():
    # two BN layers of one channel, one member: layer 1 differs by 1 in the mean, layer 2 by 3
    batch = [[(torch.tensor([1.0]), torch.tensor([1.0])), (torch.tensor([3.0]), torch.tensor([1.0]))]]
    source = [[(torch.tensor([0.0]), torch.tensor([1.0])), (torch.tensor([0.0]), torch.tensor([1.0]))]]
    zeta = torch.tensor([1.0])
    # the squared form: 1 + 9; Eq. 3's unsquared norms (the default): 1 + 3
    assert BNStatsLoss([[0]], distance="sq")(batch, source, zeta).item() == pytest.approx(1 + 9)
    assert BNStatsLoss([[0]])(batch, source, zeta).item() == pytest.approx(1 + 3, abs=1e-5)
    assert BNStatsLoss([[0]], "mean", distance="sq")(batch, source, zeta).item() == pytest.approx((1 + 9) / 2)
    assert BNStatsLoss([[0]], "sum", 0.5, "sq")(batch, source, zeta).item() == pytest.approx(1)
    assert BNStatsLoss([[0]], "mean", 0.25, "sq")(batch, source, zeta).item() == pytest.approx(1)  # ⌈0.5⌉ = 1 layer


def test_neighbourhood_consistency_by_hand():
    bank_feats = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.6, 0.8]])
    bank_probs = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8]], requires_grad=True)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    idx = torch.tensor([0, 2])
    loss = NeighbourhoodConsistencyLoss(k=1)(probs, feats, bank_feats, bank_probs, idx, alpha=0.5)
    # image 0 ([1, 0]): nearest other row is 1 → 0.7·1; image 2 ([0, 1]): row 3 (cos 0.8) → 0.5
    # dispersion: p0·p2 = 0.14 + 0.24 = 0.38 for each image
    assert loss.item() == pytest.approx(-(0.7 + 0.5) / 2 + 0.5 * 0.38, abs=1e-6)
    torch.testing.assert_close(bank_feats[[0, 2]], feats)  # the batch's rows are refreshed
    torch.testing.assert_close(bank_probs[[0, 2]], probs.detach())
    loss.backward()
    assert probs.grad is not None and probs.grad.abs().sum() > 0


def test_ensemble_features_give_the_zeta_weighted_cosine():
    torch.manual_seed(0)
    a = [torch.randn(2, 5), torch.randn(2, 3)]
    zeta = torch.tensor([0.3, 0.7])
    f = ensemble_features(a, zeta)
    cos = [torch.nn.functional.cosine_similarity(m[0], m[1], dim=0) for m in a]
    assert (f[0] @ f[1]).item() == pytest.approx(float(0.3 * cos[0] + 0.7 * cos[1]), abs=1e-6)


def test_label_free_scores_and_the_keep_rule():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    scores = target_scores(probs, torch.tensor([0, 1]))
    assert scores["agree"] == 0.5  # argmax of [0.5, 0.5] is 0
    assert scores["im"] == pytest.approx(scores["ent"] - scores["div"], abs=1e-5)
    assert scores["ent"] == pytest.approx(0.3466, abs=1e-3)  # (0 + ln 2) / 2
    assert better("min-im", {"im": -1.0}, {"im": -0.5}) and not better("min-im", {"im": -0.4}, {"im": -0.5})
    assert better("last", {"im": 5.0}, {"im": -0.5})


def test_softmax_zeta_and_the_mean_teacher(setup):
    sources = load_sources([setup["a"], setup["b"]])
    model = AdaptiveEnsemble(sources.contract.retarget("depth"), sources.members, True, "softmax")
    with torch.no_grad():
        model.w.copy_(torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(model.zeta(), torch.softmax(torch.tensor([1.0, 0.0]), 0))
    teacher = model.teacher()
    assert not any(p.requires_grad for p in teacher.parameters())
    before = [p.clone() for p in teacher.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    teacher.follow(model, 0.9)
    for old, new, student in zip(before, teacher.parameters(), model.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * student)


def test_ti_batches_can_use_the_running_statistics(setup):
    sources = load_sources([setup["a"]])
    model = AdaptiveEnsemble(sources.contract.retarget("depth"), sources.members, learn_zeta=True).train()
    before = [(m.clone(), v.clone()) for m, v in running_stats(model.members[0])]
    raw = torch.rand(4, 1, 32, 32) * 4000
    with model.running_bn_stats():
        feats = model.encode(raw)[0]
    for (m0, v0), (m1, v1) in zip(before, running_stats(model.members[0])):
        assert torch.equal(m0, m1) and torch.equal(v0, v1)
    assert all(bn.training for bn in model._bn[0])  # the mode is restored
    model.eval()
    torch.testing.assert_close(feats, model.encode(raw)[0], atol=1e-4, rtol=1e-4)  # BN as in eval mode


def test_presets_and_explicit_options():
    config = AdaptConfig.for_method("socket-plus", modality="nir", repeats=None, lambda_nc=0.5)
    assert config.repeats == PRESETS["socket-plus"]["repeats"] == 3 and config.bn_distance == "norm"
    assert config.lambda_nc == 0.5 and config.modality == "nir" and config.ti_schedule == "constant"
    assert AdaptConfig.for_method("socket-plus", repeats=1).repeats == 1  # explicit wins
    assert config.uses_ti and config.uses_bn_stats and config.learns_zeta
    assert AdaptConfig.for_method("socket") == AdaptConfig(method="socket")  # the paper's stays unchanged
    for bad, words in (({"bn_layers": 0}, "--bn-layers"), ({"ema": 1.0}, "--ema"), ({"keep": "best"}, "--keep"),
                       ({"zeta_param": "exp"}, "--zeta-param"), ({"lambda_nc": -1}, "non-negative")):
        with pytest.raises(UsageError, match=words):
            AdaptConfig(**bad)


def test_socket_plus_end_to_end_keeps_the_min_im_epoch(setup, tmp_path, capsys):
    out = tmp_path / "plus.pt"
    argv = adapt_argv(setup, out, "socket", epochs=3, ti_source=str(setup["ti_rgb"]), ti_target=str(setup["ti_depth"]))
    argv[argv.index("socket")] = "socket-plus"
    assert main(argv + ["--keep", "min-im", "--lambda-nc", "1", "--repeats", "1"]) == 0
    _, data = artifact.load(out)
    history = [json.loads(line) for line in (tmp_path / "plus.pt-run" / "metrics.jsonl").read_text().splitlines()]
    assert {"l_nc", "l_ti", "l_d", "l_pl", "im", "agree"} <= set(history[-1])
    config = json.loads((tmp_path / "plus.pt-run" / "config.json").read_text())["config"]
    assert config["method"] == "socket-plus" and config["repeats"] == 1 and config["ema"] == 0.0
    metrics = data["provenance"]["metrics"]
    kept = min(range(len(history)), key=lambda e: history[e]["im"])
    assert metrics["kept_epoch"] == kept
    capsys.readouterr()
    assert main(["eval", str(out), "--data", str(setup["depth"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(history[kept]["accuracy"], abs=0.01)


def test_a_useless_source_loses_its_weight_with_fast_softmax_zeta(setup, tmp_path):
    """A source whose classifier outputs uniform probabilities carries no information: with the
    softmax ζ at lr 1 it loses its weight; with the paper's (sigmoid, lr 0.01) ζ hardly moves."""
    model, data = artifact.load(setup["a"])
    with torch.no_grad():
        model.members[0].classifier.parametrizations.weight.original0.zero_()  # weight-norm gain g = 0
        model.members[0].classifier.bias.zero_()
    useless = tmp_path / "useless.pt"
    artifact.save(model, useless, "source", data["provenance"])
    zetas = {}
    for name, extra in (("paper", []), ("plus", ["--zeta-param", "softmax", "--lr-zeta", "1"])):
        out = tmp_path / f"{name}.pt"
        assert main(adapt_argv(setup, out, "decision", epochs=3, sources=("a", str(useless))) + extra) == 0
        zetas[name] = artifact.load(out)[1]["zeta"]
    assert abs(zetas["paper"][0] - 0.5) < 0.01  # 9 steps at lr 0.01: ζ hardly moves
    assert zetas["plus"][0] > 0.6, zetas  # the informative source gains weight in the same 9 steps
    assert zetas["plus"][0] - 0.5 > 20 * abs(zetas["paper"][0] - 0.5)


def test_bn_loss_as_gaussian_kl_is_scale_free():
    # one layer of two channels, one member: channel 1 agrees, channel 2 has mean 2 away and var ×4
    batch = [[(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 4.0]))]]
    source = [[(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]))]]
    zeta = torch.tensor([1.0])
    kl_channel = 0.5 * (4 + 4 - 1 + math.log(1 / 4))  # 0.5·(σ²_t/σ²_s + Δμ²/σ²_s − 1 + ln σ²_s/σ²_t)
    assert BNStatsLoss([[0]], distance="kl")(batch, source, zeta).item() == pytest.approx(kl_channel / 2, rel=1e-4)
    # scaling every activation by 100 multiplies the squared distance by 10⁴ (Eq. 3's norms by 100 to 10⁴)…
    scaled_b = [[(m * 100, v * 1e4) for m, v in batch[0]]]
    scaled_s = [[(m * 100, v * 1e4) for m, v in source[0]]]
    sq, sq_scaled = (BNStatsLoss([[0]], distance="sq")(b, s, zeta).item()
                     for b, s in ((batch, source), (scaled_b, scaled_s)))
    assert sq_scaled > 1e4 * sq * 0.99
    # …and leaves the KL unchanged
    assert BNStatsLoss([[0]], distance="kl")(scaled_b, scaled_s, zeta).item() == pytest.approx(kl_channel / 2, rel=1e-3)


def test_predictions_that_are_not_numbers_stop_the_run():
    from socket_edge.adapt.trainer import require_finite

    require_finite(torch.tensor([[0.5, 0.5]]), 1)
    with pytest.raises(UsageError, match="became NaN/inf after epoch 2.*--bn-distance kl"):
        require_finite(torch.tensor([[float("nan"), 0.5]]), 2)
