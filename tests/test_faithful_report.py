"""The faithful_socket report's goal intervals (a bootstrap of the paired seeds within each setting) and
which of its variants the λ choice compares."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from faithful_socket_report import _interval, _lambdas  # noqa: E402


def _cells(gains: dict[str, list[float]]) -> dict:
    """Per setting, base at 50 % and a variant `gain` above it, seed by seed (both accuracies alike)."""
    cells = {}
    for setting, per_seed in gains.items():
        cells[setting, "base"] = [{"seed": k, "accuracy": 50.0, "inductive": 50.0} for k in range(len(per_seed))]
        cells[setting, "v"] = [{"seed": k, "accuracy": 50.0 + g, "inductive": 50.0 + g} for k, g in enumerate(per_seed)]
    return cells


def test_the_interval_is_the_gain_itself_when_every_seed_agrees_and_widens_with_their_spread():
    steady = _cells({"a": [2.0, 2.0, 2.0], "b": [4.0, 4.0]})
    assert _interval(steady, ["a", "b"], "v", "base") == " [95 % interval +3.0 … +3.0]"
    spread = _cells({"a": [-4.0, 2.0, 8.0], "b": [4.0, 4.0]})  # the same mean gain, +3.0
    low, high = (float(x) for x in _interval(spread, ["a", "b"], "v", "base")[15:-1].split(" … "))
    assert -1.0 <= low < 3.0 < high <= 6.0  # setting a's mean ranges over −4 … +8, halved by the average
    assert _interval(spread, ["a", "b"], "v", "base") == _interval(spread, ["a", "b"], "v", "base")  # stable


def test_no_interval_from_one_seed_or_no_pair():
    assert _interval(_cells({"a": [2.0], "b": [1.0, 3.0]}), ["a", "b"], "v", "base") == \
        " [no interval: one seed on a setting]"
    assert _interval(_cells({"a": [2.0, 1.0]}), ["a"], "v", "missing") == ""


def test_the_lambda_choice_compares_only_the_variants_that_differ_in_lambda():
    variants = ["base", "socket λ 0.1", "socket λ 0.25", "socket λ 0.5, cosine λ_TI and λ_d",
                "socket λ_TI 0.5, cosine λ_TI", "socket, cosine λ_TI", "socket λ 1"]
    assert _lambdas(variants) == ["socket λ 0.1", "socket λ 0.25", "socket λ 1"]


def test_the_report_shows_the_goals_as_a_picture_beside_their_lines(tmp_path):
    from faithful_socket_report import PRESET, report

    rows = [{"key": f"{s}/{v}/{seed}", "setting": s, "variant": v, "seed": seed, "accuracy": acc + seed,
             "inductive": acc - seed}
            for s in ("rgbnir RGB→NIR", "synth kv1") for seed in (0, 1)
            for v, acc in (("base", 60.0), ("socket λ 0.1", 61.0), ("socket λ 0.25", 63.0), ("socket λ 0.5", 62.0),
                           (PRESET, 66.0))]
    out, plot, gain_plot = tmp_path / "r.md", tmp_path / "all.png", tmp_path / "gain.png"
    report(rows, out=out, plot=plot, gain_plot=gain_plot)
    text = out.read_text()
    assert plot.stat().st_size > 10_000 and gain_plot.stat().st_size > 10_000
    assert "](../img/all.png)" in text and "](../img/gain.png)" in text
    assert text.index("## Goals") < text.index("../img/gain.png") < text.index("## Term balance")
    assert f"- {PRESET} (socket-plus until ×3) − socket λ 0.25 ≥ +2 on the mean: +3.0" in text
    assert f"| **{PRESET}** (socket-plus until ×3) |" in text


def test_runs_pair_only_on_equal_source_models_where_their_rows_record_them():
    from faithful_socket_report import _paired_gain

    cells = {("a", "base"): [{"seed": 0, "accuracy": 50.0, "inductive": 50.0, "sources": ["sha256:1"]},
                             {"seed": 1, "accuracy": 50.0, "inductive": 50.0, "sources": ["sha256:1"]}],
             ("a", "v"): [{"seed": 0, "accuracy": 54.0, "inductive": 54.0, "sources": ["sha256:1"]},
                          {"seed": 1, "accuracy": 90.0, "inductive": 90.0, "sources": ["sha256:2"]}]}
    assert _paired_gain(cells, ["a"], "v", "base") == (4.0, 4.0, 1)  # seed 1 ran on other sources
    for row in cells["a", "v"] + cells["a", "base"]:
        del row["sources"]  # rows from before the fingerprint pair by seed alone
    assert _paired_gain(cells, ["a"], "v", "base") == (22.0, 22.0, 1)


def test_the_replication_gets_its_own_table_and_goals_after_the_studys(tmp_path):
    from faithful_socket_report import PLUS, report

    def rows(shift: float, sources: str | None, seeds=(0, 1)) -> list[dict]:
        return [{"key": f"{s}/{v}/{seed}", "setting": s, "variant": v, "seed": seed, "accuracy": acc + shift,
                 "inductive": acc + shift, "date": "2026-12-06", "cpu": "AMD EPYC",
                 **({"sources": [sources]} if sources else {})}
                for s in ("rgbnir RGB→NIR", "synth kv1") for seed in seeds
                for v, acc in (("base", 60.0), ("socket λ 0.25", 63.0), (PLUS, 66.0 + shift))]

    out = tmp_path / "r.md"
    report(rows(0.0, None, (0, 1, 6)), out=out, plot=tmp_path / "a.png", gain_plot=tmp_path / "g.png",
           replication=rows(2.0, "abc"))
    text = out.read_text()
    study, again = text.split("## Replication")
    assert f"- {PLUS} − socket λ 0.25 ≥ +2 on the mean: +3.0" in study
    assert f"- {PLUS} − socket λ 0.25 ≥ +2 on the mean: +5.0" in again  # its own runs alone
    assert "(12 runs; 2026-12-06; AMD EPYC; seeds 0, 1)" in again
    assert "| base | 62.0 ± 0.0 (2) / 62.0 ± 0.0 (2) | 62.0 ± 0.0 (2) / 62.0 ± 0.0 (2) | 62.0 / 62.0 |" in again
    assert again.index("never below base − 1") < again.index("## Term balance")
    # pooled with the study's seed 6 (a confirmation seed, one session), not its seeds 0 and 1: (5 + 5 + 3) / 3
    assert f"study's seeds 6–11): {PLUS} − socket λ 0.25 +4.3 / +4.3" in again
    # the preset follows the best on the replication's mean, where every pair shares its sources; with its picture
    assert "paired against base (socket-plus's single-run preset followed it until --repeats 3)" in again
    assert f"→ **{PLUS}**" in again
    assert "paired against base (socket-plus's preset followed it until the replication below)" in study
    assert (tmp_path / "g_replication.png").stat().st_size > 10_000 and "](../img/g_replication.png)" in again
    # each candidate against the variant it changes by one thing, on the replication's own runs: PLUS is
    # socket λ 0.25 with λ_TI fading, 70 against 65 there
    assert f"- {PLUS} vs socket λ 0.25: +5.0 / +5.0 (2 settings; seed by seed +5.0 / +5.0, +5.0 / +5.0)" in again
    assert f'--variants base "socket λ 0.25" "{PLUS}" --seeds 0 1`' in again  # the reproduce line names its variants


def test_a_candidate_with_no_run_of_base_on_its_sources_gets_no_floor_line(tmp_path):
    from faithful_socket_report import PRESET, _goal_items

    cells = {}
    for v, acc, sources in (("base", 60.0, "b"), ("socket λ 0.25", 63.0, "s"), (PRESET, 66.0, "s")):
        cells["a", v] = [{"seed": k, "accuracy": acc, "inductive": acc, "sources": [sources]} for k in (0, 1)]
    lines = _goal_items(cells, ["a"], ["base", "socket λ 0.25", PRESET], "socket λ 0.25")
    assert lines == [f"- {PRESET} (socket-plus until ×3) − socket λ 0.25 ≥ +2 on the mean: +3.0 [95 % interval +3.0 … +3.0] "
                     "(1 settings) → **met**"]


def test_averaged_adaptations_are_the_mean_of_the_recorded_probabilities(tmp_path):
    from repeats_report import expected, repeats_lines

    def run(seed: int, right: list[bool]) -> dict:  # 4 frames of class 0: confident where right, else class 1
        probs = [[0.9, 0.1] if ok else [0.4, 0.6] for ok in right]
        return {"adapt": {"labels": [0] * 4, "probs": probs}, "held": {"labels": [0] * 4, "probs": probs}}

    # three runs each wrong on a different frame: each 75 %, their mean right on all four (0.9 + 0.9 + 0.4 > 1.5)
    runs = {0: run(0, [False, True, True, True]), 1: run(1, [True, False, True, True]), 2: run(2, [True, True, False, True])}
    assert expected(runs, 1) == (75.0, 75.0) and expected(runs, 3) == (100.0, 100.0)
    assert expected(runs, 2) == (100.0, 100.0) and expected(runs, 4) is None
    rows, probs = [], {}
    for setting in ("rgbnir RGB→NIR", "synth kv1"):
        for variant in ("base", "socket λ 0.25"):
            for seed, record in runs.items():
                key = f"{setting}/{variant}/{seed}"
                rows.append({"key": key, "setting": setting, "variant": variant, "seed": seed, "sources": ["s"]})
                probs[key] = record if variant != "base" else run(seed, [True, True, False, False])
    lines = "\n".join(repeats_lines(rows, probs, tmp_path / "r.png"))
    assert "| **socket λ 0.25 ×3** (socket-plus) | 100.0 / 100.0 | 100.0 / 100.0 | 100.0 / 100.0 |" in lines
    assert "| base ×3 | 50.0 / 50.0 |" in lines  # the same two errors in every run: averaging fixes none
    assert "socket λ 0.25 ≥ +2 on the mean: +25.0" in lines and "worst +50.0" in lines
    assert (tmp_path / "r.png").stat().st_size > 10_000
