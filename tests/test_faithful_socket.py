"""SOCKET as the paper wrote it (issue 22): L_d over the convolution BatchNorms, the encoders' dropout
off while adapting, every TI pair trained on unless a hold-out is asked for, and the term balance."""

import json
import math
import re

import pytest
import torch
from torch import nn

from conftest import adapt_argv
from socket_edge.adapt.config import DEFAULT_LAMBDA, AdaptConfig
from socket_edge.adapt.inputs import load_inputs, load_sources
from socket_edge.adapt.model import AdaptiveEnsemble, running_stats
from socket_edge.adapt.term_balance import describe, flags, scheduled_weight
from socket_edge.cli import main
from socket_edge.errors import UsageError
from socket_edge.models import artifact


def _ensemble(setup, **options) -> AdaptiveEnsemble:
    sources = load_sources([setup["a"], setup["b"]])
    return AdaptiveEnsemble(sources.contract.retarget("depth"), sources.members, True, **options)


def _dropouts(model: AdaptiveEnsemble) -> list[nn.Module]:
    return [m for member in model.members for m in member.encoder.modules() if isinstance(m, nn.Dropout)]


def test_the_encoders_dropout_is_off_while_adapting_unless_asked_for(setup):
    model = _ensemble(setup).train()
    assert _dropouts(model) and not any(m.training for m in _dropouts(model))
    assert model.members[0].encoder[1].training  # the rest trains (the bottleneck's BatchNorm)
    raw = torch.rand(8, 1, 32, 32) * 3000
    with model.frozen_bn_stats():
        first, second = model.encode(raw), model.encode(raw)
    assert torch.equal(first[0], second[0])  # no random mask: the same features twice
    noisy = _ensemble(setup, dropout=True).train()
    assert all(m.training for m in _dropouts(noisy))
    with noisy.frozen_bn_stats():
        assert not torch.equal(noisy.encode(raw)[0], noisy.encode(raw)[0])


def test_l_d_matches_the_batchnorms_after_convolutions_only(setup):
    model = _ensemble(setup)
    conv = sum(isinstance(m, nn.BatchNorm2d) for m in model.members[0].encoder.modules())
    assert len(running_stats(model.members[0])) == conv
    assert len(running_stats(model.members[0], "all")) == conv + 1  # + the bottleneck's BatchNorm1d
    for scope, layers in (("conv", conv), ("all", conv + 1)):
        model = _ensemble(setup, bn_scope=scope).train()
        with model.frozen_bn_stats(), model.recording_bn_stats() as recorded:
            model(torch.rand(4, 1, 32, 32) * 3000)
        assert [len(r) for r in recorded] == [layers, layers]


def test_every_ti_pair_trains_unless_a_holdout_is_asked_for(setup):
    sources = load_sources([setup["a"], setup["b"]])
    config = AdaptConfig(method="socket")
    assert config.ti_holdout == 0
    inputs = load_inputs(config, sources, setup["depth"], setup["ti_rgb"], setup["ti_depth"], None, progress=False)
    assert len(inputs.ti_target) == len(inputs.ti_source) == 12 and inputs.held_ti_target is None
    assert inputs.ti_summary["held_out"] == 0
    held = load_inputs(AdaptConfig(method="socket", ti_holdout=0.25), sources, setup["depth"], setup["ti_rgb"],
                       setup["ti_depth"], None, progress=False)
    assert len(held.ti_target) == 9 and len(held.held_ti_target) == 3


def test_each_active_terms_gradient_norm_is_recorded_every_epoch(setup, tmp_path, capsys):
    out = tmp_path / "s.pt"
    assert main(adapt_argv(setup, out, "socket")) == 0
    history = [json.loads(line) for line in (tmp_path / "s.pt-run" / "metrics.jsonl").read_text().splitlines()]
    assert "grad_norms" not in history[0]  # the unadapted line: no step yet
    for entry in history[1:]:
        assert set(entry["grad_norms"]) == {"im", "pl", "d", "ti"}
        assert all(v > 0 for v in entry["grad_norms"].values())
    assert history[1]["grad_norms"] != history[2]["grad_norms"]  # measured again each epoch
    faded = tmp_path / "cosine.pt"  # λ·(1 + cos πp)/2: λ at the first step, half of it at epoch 2's (p = ½)
    assert main(adapt_argv(setup, faded, "socket", ti_schedule="cosine", d_schedule="cosine")) == 0
    cosine = [json.loads(line) for line in (tmp_path / "cosine.pt-run" / "metrics.jsonl").read_text().splitlines()]
    assert cosine[1]["grad_norms"] == history[1]["grad_norms"]
    for term in ("ti", "d"):
        assert 0.4 < cosine[2]["grad_norms"][term] / history[2]["grad_norms"][term] < 0.6
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "term balance" in text and "epoch 1: grad IM" in text and "epoch 2: grad IM" in text
    shot = tmp_path / "shot.pt"
    assert main(adapt_argv(setup, shot, "shot", epochs=1)) == 0
    lines = (tmp_path / "shot.pt-run" / "metrics.jsonl").read_text().splitlines()
    assert set(json.loads(lines[-1])["grad_norms"]) == {"im", "pl"}


def test_a_ti_warmup_trains_the_cross_modal_terms_alone_first(setup, tmp_path):
    assert AdaptConfig().ti_warmup == 0  # the paper's: every term from the first step
    # the first quarter of training: 2 of the 6 steps (3 per epoch here), so it ends within epoch 1
    assert main(adapt_argv(setup, tmp_path / "warm.pt", "socket", ti_warmup="0.25")) == 0
    history = [json.loads(line) for line in (tmp_path / "warm.pt-run" / "metrics.jsonl").read_text().splitlines()]
    assert set(history[1]["grad_norms"]) == {"ti", "d"}  # the trained loss: IM and the pseudo-labels wait
    assert {"l_ent", "l_div", "l_pl"} <= set(history[1])  # recorded all the same
    assert set(history[2]["grad_norms"]) == {"im", "pl", "ti", "d"}
    for options, message in (({"method": "shot", "ti_warmup": 0.1}, "--ti-warmup 0.1 trains L_TI and L_d alone "
                               "first, which --method shot does not use"),
                             ({"method": "socket", "ti_warmup": 1.0}, "--ti-warmup is a share of training in "
                              "[0, 1), got 1.0"),
                             ({"method": "socket", "ti_warmup": -0.1}, "got -0.1")):
        with pytest.raises(UsageError, match=re.escape(message)):
            AdaptConfig(**options)


def test_the_cosine_schedule_fades_a_weight_from_its_value_to_zero():
    assert scheduled_weight(0.4, "constant", 0.7) == 0.4
    assert scheduled_weight(0.4, "cosine", 0.0) == pytest.approx(0.4)
    assert scheduled_weight(0.4, "cosine", 0.25) == pytest.approx(0.2 * (1 + math.sqrt(0.5)))
    assert scheduled_weight(0.4, "cosine", 0.5) == pytest.approx(0.2)
    assert scheduled_weight(0.4, "cosine", 1.0) == pytest.approx(0.0, abs=1e-12)
    assert AdaptConfig().ti_schedule == "constant"  # the paper's, for every method
    with pytest.raises(UsageError, match="--ti-schedule 'linear' is not one of constant, cosine"):
        AdaptConfig(ti_schedule="linear")
    with pytest.raises(UsageError, match="--ti-schedule cosine fades the weight of L_TI, which --method shot"):
        AdaptConfig(method="shot", ti_schedule="cosine")
    assert AdaptConfig().d_schedule == "constant"
    with pytest.raises(UsageError, match="--d-schedule cosine fades the weight of L_d, which --method decision"):
        AdaptConfig(method="decision", d_schedule="cosine")
    assert not AdaptConfig.for_method("socket-plus", lambda_ti=0).uses_ti  # L_d alone


def test_the_term_balance_flags_inert_and_dominant_terms():
    norms = {"im": 8.0, "pl": 2.0, "ti": 0.4, "d": 231.0}
    assert flags(norms) == {"ti": "inert", "d": "dominant"}
    assert describe(norms) == "grad IM 8, pl 2, TI 0.4 (inert), d 231 (dominant)"


def test_the_default_method_is_socket_plus_with_ti_pairs_and_shot_or_decision_without(setup, tmp_path, capsys):
    with_pairs = tmp_path / "pairs.pt"
    pairs = {"ti_source": str(setup["ti_rgb"]), "ti_target": str(setup["ti_depth"])}
    assert main(adapt_argv(setup, with_pairs, None, epochs=1, **pairs)) == 0
    assert "note: no --method: socket-plus (SOCKET three times, averaged: 3× the time and the inference of --method " \
        "socket), the best with TI pairs" in capsys.readouterr().err
    assert artifact.read(with_pairs)["provenance"]["config"]["repeats"] == 3
    for seed in (0, 1, 2):
        config = json.loads((tmp_path / "pairs.pt.repeats" / f"seed-{seed}.pt-run" / "config.json").read_text())["config"]
        assert config["method"] == "socket-plus" and config["seed"] == seed and config["ti_holdout"] == 0
        assert config["ti_schedule"] == "constant" and config["ti_warmup"] == 0  # SOCKET's own terms, as printed
        assert config["lambda_ti"] == config["lambda_d"] == DEFAULT_LAMBDA
    for sources, expected in ((("a", "b"), "decision"), (("a",), "shot")):
        out = tmp_path / f"{expected}.pt"
        assert main(adapt_argv(setup, out, None, epochs=1, sources=sources)) == 0
        assert "note:" not in capsys.readouterr().err
        assert json.loads((tmp_path / f"{expected}.pt-run" / "config.json").read_text())["config"]["method"] == expected