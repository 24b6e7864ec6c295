"""docs/benchmarks/socket_plus.md and its plot from benchmarks/results/socket_plus.jsonl
(written by `benchmarks/socket_plus.py report`)."""

from __future__ import annotations

import itertools
import statistics
from functools import partial

import numpy as np
from results_io import mean_std, min_im_accuracy, probability_records
from socket_plus_grid import RESULTS, ROOT, SEEDS, VARIANTS
from socket_edge import atomic

SETTINGS = ["rgbnir RGB→NIR", "rgbnir NIR→RGB", "synth kv1", "synth kv2", "synth rs", "synth kv1+kv2→rs"]
REPORT = ROOT / "docs" / "benchmarks" / "socket_plus.md"
PLOT = ROOT / "docs" / "img" / "socket_plus_gain.png"
# socket_edge.adapt.config.PRESETS["socket-plus"]: a fixed default (see the conclusion for how it was chosen)
CHOSEN = "socket, L_d as Gaussian KL"


def _acc(rows: list[dict], variant: str, setting: str, seeds: tuple[int, ...] = SEEDS) -> list[float]:
    """Final accuracies of a variant on a setting, for the given seeds (default: the grid's 0/1/2;
    an empty tuple: every seed run)."""
    return [r["accuracy"] for r in rows if r["variant"] == variant and r["setting"] == setting
            and (not seeds or r["seed"] in seeds)]


def _score(rows: list[dict], variant: str, key: str) -> float | None:
    values = [r[key][-1] for r in rows if r["variant"] == variant and r["seed"] in SEEDS and r.get(key)
              and r[key][-1] is not None]
    return statistics.mean(values) if values else None


def meets_goal(rows: list[dict], variant: str, setting: str) -> bool | None:
    """Issue 7's goal on one setting: mean ≥ base + 3 points AND a smaller std over seeds 0/1/2."""
    return goal(_acc(rows, variant, setting), _acc(rows, "base", setting))


def goal(acc: list[float], base: list[float]) -> bool | None:
    """Mean ≥ base's + 3 points and a smaller std (None with fewer than two values)."""
    if len(acc) < 2 or len(base) < 2:
        return None
    return statistics.mean(acc) >= statistics.mean(base) + 3 and statistics.stdev(acc) < statistics.stdev(base)


def label_free_choice(rows: list[dict]) -> tuple[str, dict[str, float]]:
    """The rule: among the adapted variants run on every setting, the lowest mean information-
    maximisation objective (ent − div) of the final model on the target, over settings and seeds."""
    scores = {}
    for variant in VARIANTS:
        if variant == "base" or any(len(_acc(rows, variant, s)) < 3 for s in SETTINGS):
            continue
        scores[variant] = _score(rows, variant, "im")
    return min(scores, key=scores.get), scores


def _ensemble_accuracy(probs: dict, keys: list[str]) -> float | None:
    """Accuracy (%) of the mean of the runs' probabilities; None when a run's probabilities are missing."""
    if any(k not in probs for k in keys):
        return None
    labels = np.asarray(probs[keys[0]][0])
    mean = sum(np.asarray(probs[k][1]) for k in keys) / len(keys)
    return round(100.0 * float((mean.argmax(1) == labels).mean()), 2)


def _goal_cells(accs: list[list[float]], bases: list[list[float]]) -> tuple[list[str], int]:
    cells = [f"**{mean_std(a)}**" if goal(a, b) else mean_std(a) for a, b in zip(accs, bases)]
    return cells, sum(bool(goal(a, b)) for a, b in zip(accs, bases))


def more_seeds(rows: list[dict]) -> list[str]:
    """Variants re-run with seeds beyond 0/1/2: every seed, against base's every seed."""
    variants = [v for v in VARIANTS if any(r["variant"] == v and r["seed"] not in SEEDS for r in rows)]
    if not variants:
        return []
    lines = ["## More seeds", "",
             "A later grid ran some variants with seeds 3–8 (same sources, same H200). Mean ± std over every seed "
             "run (n); bold: the goal against base over its every seed.", "",
             "| variant | " + " | ".join(SETTINGS) + " | n |", "|---|" + "---|" * (len(SETTINGS) + 1)]
    bases = [_acc(rows, "base", s, ()) for s in SETTINGS]
    for variant in variants:
        accs = [_acc(rows, variant, s, ()) for s in SETTINGS]
        cells, _ = _goal_cells(accs, bases)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {'–'.join(sorted({str(len(a)) for a in accs}))} |")
    return lines + [""]


def ensembles(rows: list[dict], probs: dict) -> list[str]:
    """Averaging the probabilities of several runs: of one variant over seeds, and of different variants
    at the same seed (what a user could do with k× the adaptation and inference cost)."""
    if not probs:
        return []
    lines = ["## Ensembles of runs", "",
             "From the class probabilities every run of the later grids recorded "
             "(benchmarks/results/socket_plus_probs.jsonl.gz). An ensemble averages the probabilities of k runs, "
             "so it costs k adaptations and k× the inference (or a distillation). Three ensembles per row "
             "(mean ± std); bold: the goal against single-run base over seeds 0/1/2.", "",
             "| ensemble | k | " + " | ".join(SETTINGS) + " | goal met |", "|---|---|" + "---|" * (len(SETTINGS) + 1)]
    bases = [_acc(rows, "base", s) for s in SETTINGS]
    have = {v for v in VARIANTS if all(f"{s}/{v}/{i}" in probs for s in SETTINGS for i in SEEDS)}
    for k in (3, 2):
        for variant in [v for v in VARIANTS if v in have]:
            members = [[i + 3 * j for j in range(k)] for i in SEEDS]
            if not all(f"{s}/{variant}/{seed}" in probs for s in SETTINGS for m in members for seed in m):
                continue
            accs = [[_ensemble_accuracy(probs, [f"{s}/{variant}/{seed}" for seed in m]) for m in members]
                    for s in SETTINGS]
            cells, met = _goal_cells(accs, bases)
            lines.append(f"| {variant}, seeds i, i+3{', i+6' if k == 3 else ''} | {k} | " + " | ".join(cells)
                         + f" | {met} |")
    combos = []
    for k in (2, 3):
        for combo in itertools.combinations(sorted(have - {"unadapted"}), k):
            accs = [[_ensemble_accuracy(probs, [f"{s}/{v}/{i}" for v in combo]) for i in SEEDS] for s in SETTINGS]
            cells, met = _goal_cells(accs, bases)
            worst = min(statistics.mean(a) - statistics.mean(b) for a, b in zip(accs, bases))
            combos.append((met, worst, combo, cells))
    combos.sort(key=lambda c: (-c[0], -c[1]))
    for met, _, combo, cells in combos[:6]:
        lines.append(f"| {' + '.join(combo)}, same seed | {len(combo)} | " + " | ".join(cells) + f" | {met} |")
    lines += ["", f"The variant mixes shown are the 6 best (most settings met, then the smallest loss to base) of "
                  f"{len(combos)} two- and three-variant mixes: chosen with labels, so optimistic.", ""]
    return lines


def label_free_scores(rows: list[dict], probs: dict) -> list[str]:
    """How well label-free scores rank the variants: the IM objective and the agreement between seeds."""
    table = []
    for variant in VARIANTS:
        keys = [(s, i) for s in SETTINGS for i in SEEDS]
        if variant == "unadapted" or not all(f"{s}/{variant}/{i}" in probs for s, i in keys):
            continue
        agree = []
        for s in SETTINGS:
            preds = [np.asarray(probs[f"{s}/{variant}/{i}"][1]).argmax(1) for i in SEEDS]
            agree += [100.0 * float((a == b).mean()) for a, b in itertools.combinations(preds, 2)]
        gains = [statistics.mean(_acc(rows, variant, s)) - statistics.mean(_acc(rows, "base", s)) for s in SETTINGS]
        spread = statistics.mean(statistics.stdev(_acc(rows, variant, s)) for s in SETTINGS)
        table.append((variant, _score(rows, variant, "im"), statistics.mean(agree), gains, spread))
    if not table:
        return []
    lines = ["## Do label-free scores find the better variant?", "",
             "Two scores a user can compute without labels, per variant over the six settings and seeds 0/1/2: the "
             "final IM objective on the target (lower = more confident and diverse), and how often two seeds' "
             "predictions agree on the target (higher = more stable). Beside them what the labels say.", "",
             "| variant | mean IM | seed agreement % | mean gain over base | worst gain | mean std |",
             "|---|---|---|---|---|---|"]
    for variant, im, agree, gains, spread in sorted(table, key=lambda t: t[1]):
        lines.append(f"| {variant} | {im:.3f} | {agree:.1f} | {statistics.mean(gains):+.1f} | {min(gains):+.1f} | "
                     f"{spread:.1f} |")
    ranks = [np.argsort(np.argsort(column)) for column in zip(*[(t[1], -t[2], -statistics.mean(t[3]), t[4])
                                                              for t in table])]
    rho = {name: float(np.corrcoef(ranks[i], ranks[j])[0, 1])
           for name, (i, j) in {"im_gain": (0, 2), "agree_spread": (1, 3), "agree_gain": (1, 2)}.items()}
    lines += ["", f"Rank correlations over these {len(table)} variants: IM objective with mean gain "
                  f"{rho['im_gain']:+.2f}; seed agreement with spread {rho['agree_spread']:+.2f} (agreement tracks "
                  f"stability); seed agreement with mean gain {rho['agree_gain']:+.2f}. Neither score finds the "
                  "variant with the best gain: IM's pick loses on real NIR, agreement's pick (the mean-teacher "
                  "variants) is stable but gains little.", ""]
    variants = [t[0] for t in table if t[0] not in ("base", "socket (paper)")]
    picked = [[consensus_pick(rows, probs, variants, s, i) for i in SEEDS] for s in SETTINGS]
    lines += ["A per-run choice without labels, the same on every dataset: adapt with every variant above (not "
              "base, not the paper's SOCKET) and keep the one whose predictions agree most with the mean of all "
              "of them (consensus). Accuracy of the kept run, seeds 0/1/2: "
              + ", ".join(f"{s} {mean_std(a)}" for s, a in zip(SETTINGS, picked))
              + f". It meets the goal on {sum(bool(goal(a, _acc(rows, 'base', s))) for s, a in zip(SETTINGS, picked))}"
              " of 6 settings, at the cost of "
              f"{len(variants)} adaptations: no better than the fixed default below.", ""]
    return lines


def consensus_pick(rows: list[dict], probs: dict, variants: list[str], setting: str, seed: int) -> float:
    """Accuracy of the variant whose argmax agrees most with the mean prediction of all the variants."""
    preds = {v: np.asarray(probs[f"{setting}/{v}/{seed}"][1]) for v in variants}
    consensus = (sum(preds.values()) / len(preds)).argmax(1)
    best = max(variants, key=lambda v: float((preds[v].argmax(1) == consensus).mean()))
    return next(r["accuracy"] for r in rows if r["key"] == f"{setting}/{best}/{seed}")


def ceiling(rows: list[dict]) -> list[str]:
    """What the goal asks per setting against the best any run reached, at any epoch."""
    lines = ["## How far the goal is from what these sources allow", "",
             "| setting | base + 3 (goal) | best final accuracy of any run | best accuracy of any run at any epoch |",
             "|---|---|---|---|"]
    for s in SETTINGS:
        runs = [r for r in rows if r["setting"] == s and r["variant"] != "unadapted"]
        need = statistics.mean(_acc(rows, "base", s)) + 3
        lines.append(f"| {s} | {need:.1f} | {max(r['accuracy'] for r in runs):.1f} | "
                     f"{max(max(r['per_epoch']) for r in runs):.1f} |")
    return lines + ["", f"Over {sum(r['variant'] != 'unadapted' for r in rows)} adaptation runs. The goal's mean is "
                        "an average of three runs, so it needs most runs at or above it.", ""]


def cpu_supplement(rows: list[dict]) -> list[str]:
    """The levers the GPU time did not reach, and socket-plus against base on every setting, run on this
    2-core CPU (its own source models trained on the CPU, so compare within this table only)."""
    if not rows:
        return []
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in rows)]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    lines = ["## Supplement on the CPU: the remaining levers, and socket-plus on other source models", "",
             "Run with `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/socket_plus.py run --work runs/socket_plus_cpu "
             "--results benchmarks/results/socket_plus_cpu.jsonl --workers 2 --settings … --variants …` on this "
             "2-core CPU (fp32, one thread per run). The source models were trained here, not on the GPU, so these "
             "numbers compare with each other, not with the tables above; for socket-plus (L_d as Gaussian KL) "
             "they are the nearest thing to a held-out check of a default chosen on the GPU table.", "",
             "| variant | " + " | ".join(settings) + " | per seed |", "|---|" + "---|" * (len(settings) + 1)]
    for variant in variants:
        accs = [[r["accuracy"] for r in rows if r["variant"] == variant and r["setting"] == s] for s in settings]
        seeds = ", ".join(f"{a:.1f}" for acc in accs for a in acc)
        lines.append(f"| {variant} | " + " | ".join(mean_std(a) for a in accs) + f" | {seeds} |")
    winners = [v for v in variants if v != "base" and all(meets_goal(rows, v, s) for s in settings)]
    if winners:
        lines += ["", f"On every setting of this table, these beat base by ≥ 3 points with less spread: "
                      f"{'; '.join(winners)}."]
    tried = [v for v in variants if v not in ("base", "unadapted") and sum(bool(_acc(rows, v, s)) for s in settings) > 1]
    for variant in tried:
        held = [s for s in settings if meets_goal(rows, variant, s)]
        lines += ["", f"{variant}: meets the goal on {len(held)} of the "
                      f"{sum(bool(_acc(rows, variant, s)) for s in settings)} settings it ran on"
                      + (f" ({', '.join(held)})." if held else ".")]
    return lines + [""]


def report(rows: list[dict], cpu_rows: list[dict] = ()) -> None:
    variants = ["unadapted"] + [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    im_pick, im_scores = label_free_choice(rows)
    probs = {key: (r["labels"], r["probs"]) for key, r in probability_records(RESULTS).items()}
    lines = [
        "# socket-plus: levers beyond the paper (`socket-edge adapt --method socket-plus`)", "",
        "Reproduce: `.venv/bin/python benchmarks/socket_plus.py run --workers 12` (then `report`). "
        "Final-epoch accuracy (%) on the target's task images (transductive, as in the paper: the grid adapted "
        "on every target file and predates the inductive hold-out; base, socket-plus and socket-plus "
        "`--ti-adapter` on these settings and source recipes, with inductive accuracy on a held-out 20 %: "
        "select_auto_earlier.md), mean ± std over adaptation seeds 0/1/2, one "
        "source model per setting (ImageNet MobileNetV2; rgbnir212 at 128 px, synthetic scenes at 64 px, "
        "40 per class); 15 epochs, batch 32, lr 0.01. base = SHOT with one source, DECISION with two. Every "
        "other row is the paper's SOCKET (L_TI as the per-dimension mean, λ_TI = λ_d = 0.1) with one lever "
        "changed, then combinations. Ran on one NVIDIA H200 (12–14 runs in parallel, bf16 autocast) in five "
        "batches over two sessions, each training the same source models afresh. A later batch re-ran 144 "
        "earlier runs: 137 gave identical accuracies; 7, all on the two-source setting with a learnt ζ "
        "(SOCKET, plus A), moved by 0.4–6.7 points (GPU nondeterminism); the table keeps the later record. "
        "Runs the GPU time did not reach are marked –.", "",
        "| variant | " + " | ".join(SETTINGS) + " | mean IM (label-free) |",
        "|---|" + "---|" * (len(SETTINGS) + 1),
    ]
    for variant in variants:
        cells = []
        for setting in SETTINGS:
            cell = mean_std(_acc(rows, variant, setting))
            cells.append(f"**{cell}**" if meets_goal(rows, variant, setting) else cell)
        im = _score(rows, variant, "im")
        name = f"{variant} (= socket-plus)" if variant == CHOSEN else variant
        lines.append(f"| {name} | " + " | ".join(cells) + (f" | {im:.3f} |" if im is not None else " | – |"))
    missing = [v for v in VARIANTS if v not in variants]
    lines += ["", "Bold: the issue's goal on that setting (≥ 3 points above base and a smaller spread).", ""]
    if missing:
        lines += ["Defined but not reached by the GPU time (run them with `--variants`): "
                  + ", ".join(missing) + ".", ""]
    lines += ["![gain over base](../img/socket_plus_gain.png)", ""]
    plot_gain(rows, [v for v in variants if v not in ("unadapted", "base")])
    lines += more_seeds(rows) + ensembles(rows, probs) + label_free_scores(rows, probs) + ceiling(rows)

    lines += ["## The IM rule", "",
              "The first session chose socket-plus by this rule: among the variants run on all six settings with "
              "three seeds, the lowest mean information-maximisation objective (mean prediction entropy − entropy "
              "of the mean prediction) of the final model on the unlabeled target. It picks "
              f"**{im_pick}**, which loses 3–4 points on real NIR (table above), so socket-plus no longer follows "
              "it (see the conclusion).", "", "| variant | mean IM objective |", "|---|---|"]
    for variant, score in sorted(im_scores.items(), key=lambda kv: kv[1]):
        lines.append(f"| {variant}{' ← IM pick' if variant == im_pick else ''} | {score:.3f} |")
    keep = [(r["setting"], min_im_accuracy(r) - r["accuracy"]) for r in rows if r["variant"] not in ("unadapted",)]
    changed = sum(1 for _, d in keep if abs(d) > 1e-9)
    lines += ["", f"`--keep min-im` (keep the epoch with the lowest IM objective) evaluated on every run's recorded "
                  f"history: it picks another epoch than the last in {changed} of {len(keep)} runs, mean change "
                  f"{statistics.mean(d for _, d in keep):+.2f} points: training minimises that objective, so "
                  "it almost always falls to the last epoch; the rule does not recover early peaks.", ""]
    lines += cpu_supplement(list(cpu_rows))
    lines += conclusion(rows, CHOSEN, im_pick, list(cpu_rows))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(REPORT, "\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def gains(rows: list[dict], variant: str, seeds: tuple[int, ...] = SEEDS) -> str:
    """'setting +x.x, …': the variant's mean accuracy minus base's, per setting where both ran."""
    parts = []
    for s in SETTINGS:
        a, b = _acc(rows, variant, s, seeds), _acc(rows, "base", s, seeds)
        if a and b:
            parts.append(f"{s} {statistics.mean(a) - statistics.mean(b):+.1f}")
    return ", ".join(parts)


def conclusion(rows: list[dict], chosen: str, im_pick: str, cpu_rows: list[dict]) -> list[str]:
    met = {v: sum(bool(meets_goal(rows, v, s)) for s in SETTINGS) for v in VARIANTS if v != "base"}
    best = max(met, key=met.get)

    gain = partial(gains, rows)

    return [
        "## What moves the number, and why", "",
        f"**The goal is not met.** No variant, and no ensemble of runs, beats base by ≥ 3 points with less spread "
        f"on all six settings; the most settings any single variant meets is {met[best]} ({best}). On two settings "
        "the goal is above what these sources reach at all (table above): NIR→RGB would need a mean of 97.5 %, and "
        "no run reached that at any epoch; on the two-source setting DECISION is already at 66.4 ± 2.0 and every "
        "variant's mean and every mix of runs stays within about 2 points of it.",
        "",
        f"**socket-plus is now the paper's SOCKET with L_d as the Gaussian KL divergence per channel** "
        f"(`--bn-distance kl`, everything else the paper's). Gain over base, seeds 0/1/2: {gain(chosen)}; over "
        f"every seed run (6 against base's 9): {gain(chosen, ())}. Its mean is never below "
        "base (0.4 over every seed) and it has the best mean gain; it is the smallest change to the paper that removes the "
        "term that hurts (below) and it cannot explode. How it was chosen, plainly: no label-free score ranks "
        f"the variants usefully (IM picks {im_pick}, which loses on NIR; seed agreement picks the mean-teacher "
        "variants, which gain little), so it is a fixed default picked by reading this table's labelled accuracy. "
        "That is selection on the test settings, so its numbers here are optimistic. The CPU supplement is the "
        "nearest thing to a held-out check (other source models, trained on another machine): there the same "
        f"variant against base is {gains(cpu_rows, chosen)}. So the gains on the synthetic single-source scenes "
        "kv1 and kv2 and the parity on real NIR/RGB hold on other sources; 'never below base' does not: on "
        "those sources it loses on synth rs and on the two-source setting.",
        "",
        f"- **L_d as the paper writes it is what hurts.** SOCKET without L_d: {gain('socket −L_d')}. The paper's "
        f"SOCKET: {gain('socket (paper)')}. Its squared differences of raw BatchNorm statistics are on the "
        "scale of the activations and dominate the loss, pulling the depth encoder towards RGB statistics that "
        "depth images cannot have. As a scale-free KL it keeps the cross-modal signal without that pull "
        f"({gain('socket, L_d as Gaussian KL')}); on the first quarter of the layers with a per-layer mean it is "
        f"also milder ({gain('socket, L_d first ¼ layers')}).",
        f"- **L_TI is what helps** on the synthetic scenes (kv1, kv2): the paired TI images teach the depth "
        f"encoder the RGB features directly. λ_TI 0.5 without L_d: {gain('socket −L_d, λ_TI 0.5')}; λ_TI 1: "
        f"{gain('socket −L_d, λ_TI 1')}.",
        "- **Ensembles** of three seeds of one variant narrow the spread (tables above), and base gains from them "
        "as much as the SOCKET variants do: averaging runs is a cost lever for any method, not a cross-modal one.",
        "- **TI pairs with the same random crop** (recomputing ψ per batch) hurt on the synthetic scenes: "
        f"{gain('socket, TI same crop')}; the fixed, uncropped pairs are the better target.",
        f"- **Neighbourhood consistency (AaD)** beside the pseudo-labels: {gain('socket + NC')}: it spreads more "
        "across seeds on single-source synthetic depth, where early neighbourhoods are wrong.",
        f"- **Mean teacher** (EMA 0.9 per step): base + EMA {gain('base + EMA teacher')}; SOCKET −L_d + EMA "
        f"{gain('socket −L_d + EMA teacher')}. It makes runs agree more with each other (seed agreement above) "
        "and lowers the spread, but costs accuracy on synth rs and the two-source setting.",
        f"- **ζ**: with the paper's sigmoid at lr 0.01 ζ stays within 0.04 of 0.5 (lesson 6). softmax at lr 1 lets "
        "an uninformative source lose its weight (tests/test_socket_plus.py), but on the two real sources it "
        f"collapses to one of them within a few epochs (ζ ≈ 0.999/0.001): {gain('socket, ζ softmax lr 1')} on "
        "the two-source setting with the paper's SOCKET, where it picked kv2's source; in plus A it picked kv1's.",
        "- **TI batches through BN with running statistics**, **L_TI as the norm**, **L_d as a per-layer mean** "
        "and **AaD without or instead of the pseudo-labels** ran only in the CPU supplement (3 seeds, one to "
        "three settings).",
        "- **The scale of L_d.** The paper's L_d sums squared differences of raw activation statistics. With a "
        "poorly trained source (two ResNet-50 trained 4 epochs from scratch on synthetic scenes) it was 2.2e5 after "
        "the first epoch and 2.3e13 after the third, ζ jumped to 0.01/0.99 and then 1/0, and the predictions became "
        "NaN (on the GPU, at 224 px, it was inf in the first epoch: `benchmarks/adapt_gpu.py` could not time SOCKET). "
        "`--bn-distance kl` (the Gaussian KL per channel, averaged over channels) stayed at 14.5–14.7 on the same "
        "sources with ζ at 0.5/0.5; `adapt` now stops with a clear message instead of writing a NaN model. "
        "Reproduce (CPU, one thread): `socket-edge synth r50/scenes --per-class 10 --size 64 --domains kv2`; "
        "`socket-edge train-source --data r50/scenes/kv2/rgb --arch resnet50 --weights none --img-size 64 --epochs 4 "
        "--out r50/src0.pt` (and `--seed 1 --out r50/src1.pt`); `socket-edge adapt --source r50/src0.pt --source "
        "r50/src1.pt --target r50/scenes/kv2/depth --modality depth --method socket --epochs 3 --ti-source "
        "r50/scenes/kv2/ti/rgb --ti-target r50/scenes/kv2/ti/depth --out r50/socket.pt [--bn-distance kl]`.",
        "",
    ]


def plot_gain(rows: list[dict], variants: list[str]) -> None:
    """Heat map: mean accuracy minus base's, per variant and setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.full((len(variants), len(SETTINGS)), np.nan)
    for i, variant in enumerate(variants):
        for j, setting in enumerate(SETTINGS):
            acc, base = _acc(rows, variant, setting), _acc(rows, "base", setting)
            if acc and base:
                grid[i, j] = statistics.mean(acc) - statistics.mean(base)
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(variants) + 1.6))
    image = ax.imshow(grid, cmap="RdBu", vmin=-15, vmax=15, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(SETTINGS)), SETTINGS, fontsize=7, rotation=15)
    ax.set_yticks(range(len(variants)), variants, fontsize=7)
    ax.set_title("mean accuracy − base (SHOT / DECISION), points, 3 seeds", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(PLOT, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)

