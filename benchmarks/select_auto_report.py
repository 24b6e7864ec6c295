"""docs/benchmarks/select_auto.md from benchmarks/results/select_auto_cosine.jsonl (written by
`benchmarks/select_auto.py report`)."""

from __future__ import annotations

import hashlib
import statistics

import numpy as np
from select_auto_grid import CANDIDATES, ROOT, VARIANTS
from socket_edge import atomic

SETTINGS = ["rgbnir RGB→NIR", "rgbnir NIR→RGB", "synth kv1", "synth kv2", "synth rs", "synth kv1+kv2→rs"]
REPORT = ROOT / "docs" / "benchmarks" / "select_auto.md"
PLOT = ROOT / "docs" / "img" / "select_auto.png"
# validator → +1 where higher is better, −1 where lower is (socket_edge.adapt.validators.HIGHER_IS_BETTER)
VALIDATORS = {"ti_agree": 1, "ti_kl": -1, "snd": 1, "im": -1, "agree": 1}
LABELLED = (20, 50)  # labelled frames a user might collect (issue 17: 20–50); the goal is stated for 20


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    def ranks(v: list[float]) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        order = v.argsort(kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):
            r[v == value] = r[v == value].mean()
        return r
    if len(x) < 3:
        return None
    a, b = ranks(x), ranks(y)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:+.{digits}f}" if digits == 2 else f"{v:.{digits}f}"


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def runs_of(rows: list[dict], setting: str, seed: int) -> dict[str, dict]:
    return {r["variant"]: r for r in rows if r["setting"] == setting and r["seed"] == seed and r["variant"] in CANDIDATES}


def complete(rows: list[dict]) -> list[tuple[str, int]]:
    """(setting, seed) pairs where all three candidates ran."""
    seeds = sorted({r["seed"] for r in rows})
    return [(s, i) for s in SETTINGS for i in seeds if len(runs_of(rows, s, i)) == len(CANDIDATES)]


def pick(runs: dict[str, dict], validator: str) -> str:
    """The candidate a label-free validator ranks first (final epoch), ties to the TI hold-out KL, then
    to the candidates' order (as adapt --select auto)."""
    sign = VALIDATORS[validator]
    return min(CANDIDATES, key=lambda c: (-sign * runs[c][validator][-1],
                                          runs[c]["ti_kl"][-1] if validator != "ti_kl" else 0, CANDIDATES.index(c)))


def labelled_pick(runs: dict[str, dict], probs: dict, setting: str, seed: int, count: int) -> str | None:
    """The candidate most accurate on `count` labelled frames of the adapted split (a fixed draw per
    setting and seed), ties to the candidates' order; None where probabilities are missing."""
    if any(runs[c]["key"] not in probs for c in CANDIDATES):
        return None
    labels = np.asarray(probs[runs["base"]["key"]]["adapt"]["labels"])
    rng = np.random.default_rng(int(hashlib.sha1(f"{setting}/{seed}".encode()).hexdigest()[:8], 16))
    chosen = rng.choice(len(labels), size=min(count, len(labels)), replace=False)

    def accuracy(c: str) -> float:
        p = np.asarray(probs[runs[c]["key"]]["adapt"]["probs"])[chosen]
        return float((p.argmax(1) == labels[chosen]).mean())
    return min(CANDIDATES, key=lambda c: (-accuracy(c), CANDIDATES.index(c)))


def accuracy_table(rows: list[dict]) -> list[str]:
    lines = ["| variant | " + " | ".join(SETTINGS) + " | mean |", "|---|" + "---|" * (len(SETTINGS) + 1)]
    for variant in VARIANTS:
        cells, means = [], []
        for s in SETTINGS:
            t = [r["accuracy"] for r in rows if r["variant"] == variant and r["setting"] == s]
            i = [r["inductive"] for r in rows if r["variant"] == variant and r["setting"] == s]
            cells.append(f"{statistics.mean(t):.1f} / {statistics.mean(i):.1f} (n={len(t)})" if t else "–")
            means.append((statistics.mean(t), statistics.mean(i)) if t else None)
        mean = "–" if None in means else f"{_mean([m[0] for m in means]):.1f} / {_mean([m[1] for m in means]):.1f}"
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {mean} |")
    return lines


def correlation_table(rows: list[dict]) -> tuple[list[str], dict[str, float]]:
    """Spearman ρ of each validator (signed so that + means 'ranks the more accurate higher') with the
    transductive accuracy: within each setting across its runs (final epoch), within each setting across
    runs and epochs, and pooled over every run of every setting; and within each setting with the
    inductive accuracy (final epoch: the held-out split is measured once per run)."""
    lines = ["| validator | " + " | ".join(SETTINGS) + " | mean within setting | runs × epochs (mean within setting) "
             "| pooled (all runs) | mean within setting, with the inductive accuracy |",
             "|---|" + "---|" * (len(SETTINGS) + 4)]
    means = {}
    adapted = [r for r in rows if r["variant"] in CANDIDATES]
    for v, sign in VALIDATORS.items():
        within, epochs, inductive = [], [], []
        for s in SETTINGS:
            runs = [r for r in adapted if r["setting"] == s and r[v][-1] is not None]
            within.append(spearman([sign * r[v][-1] for r in runs], [r["accuracy"] for r in runs]))
            inductive.append(spearman([sign * r[v][-1] for r in runs], [r["inductive"] for r in runs]))
            pairs = [(sign * x, a) for r in runs for x, a in zip(r[v][1:], r["per_epoch"][1:]) if x is not None]
            epochs.append(spearman([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None)
        pooled = [r for r in adapted if r[v][-1] is not None]
        rho = spearman([sign * r[v][-1] for r in pooled], [r["accuracy"] for r in pooled])
        means[v] = _mean(epochs)
        lines.append(f"| {v} | " + " | ".join(_fmt(x, 2) for x in within) + f" | {_fmt(_mean(within), 2)} | "
                     f"{_fmt(means[v], 2)} | {_fmt(rho, 2)} | {_fmt(_mean(inductive), 2)} |")
    return lines, means


def selection_table(rows: list[dict], probs: dict) -> tuple[list[str], dict]:
    """Per setting (mean over the complete seeds): base, each validator's pick, the 20-labelled pick
    and the best in hindsight; transductive / inductive accuracy."""
    pairs = complete(rows)
    rules = ["base", *(f"pick by {v}" for v in VALIDATORS), *(f"pick by {n} labelled frames" for n in LABELLED),
             "best in hindsight"]
    values: dict[str, dict[str, list[tuple[float, float]]]] = {r: {s: [] for s in SETTINGS} for r in rules}
    for s, seed in pairs:
        runs = runs_of(rows, s, seed)
        chosen = {"base": "base", **{f"pick by {v}": pick(runs, v) for v in VALIDATORS},
                  **{f"pick by {n} labelled frames": labelled_pick(runs, probs, s, seed, n) for n in LABELLED}}
        for rule, c in chosen.items():
            if c is not None:
                values[rule][s].append((runs[c]["accuracy"], runs[c]["inductive"]))
        # the ceiling: the best candidate by each accuracy (they may differ)
        values["best in hindsight"][s].append((max(runs[c]["accuracy"] for c in CANDIDATES),
                                               max(runs[c]["inductive"] for c in CANDIDATES)))
    lines = ["| rule | " + " | ".join(SETTINGS) + " | mean gain over base (trans / ind) | worst setting vs base |",
             "|---|" + "---|" * (len(SETTINGS) + 2)]
    summary = {}
    base = {s: (_mean([v[0] for v in values["base"][s]]), _mean([v[1] for v in values["base"][s]])) for s in SETTINGS}
    for rule in rules:
        cells, gains = [], {}
        for s in SETTINGS:
            vals = values[rule][s]
            if not vals:
                cells.append("–")
                continue
            t, i = _mean([v[0] for v in vals]), _mean([v[1] for v in vals])
            cells.append(f"{t:.1f} / {i:.1f}")
            gains[s] = (t - base[s][0], i - base[s][1])
        if gains:
            mean = (_mean([g[0] for g in gains.values()]), _mean([g[1] for g in gains.values()]))
            worst = (min(g[0] for g in gains.values()), min(g[1] for g in gains.values()))
            summary[rule] = {"mean": mean, "worst": worst, "settings": len(gains), "gains": gains}
            tail = f"{mean[0]:+.1f} / {mean[1]:+.1f} | {worst[0]:+.1f} / {worst[1]:+.1f}"
        else:
            tail = "– | –"
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | {tail} |")
    return lines, summary


def epoch_table(rows: list[dict]) -> list[str]:
    """Choosing the epoch within a run: the validator's best epoch (1…15) against the last and the best in
    hindsight, transductive accuracy, mean over every adapted run."""
    adapted = [r for r in rows if r["variant"] in CANDIDATES and len(r["per_epoch"]) > 1]
    if not adapted:
        return []
    lines = ["| rule | mean accuracy over runs | vs last epoch |", "|---|---|---|"]
    last = _mean([r["per_epoch"][-1] for r in adapted])
    lines.append(f"| last epoch | {last:.1f} | – |")
    for v, sign in VALIDATORS.items():
        accs = []
        for r in adapted:
            epochs = [e for e in range(1, len(r[v])) if r[v][e] is not None]
            if epochs:
                accs.append(r["per_epoch"][max(epochs, key=lambda e: (sign * r[v][e], e))])
        lines.append(f"| epoch by {v} | {_mean(accs):.1f} | {_mean(accs) - last:+.1f} |")
    best = _mean([max(r["per_epoch"][1:]) for r in adapted])
    lines.append(f"| best epoch in hindsight | {best:.1f} | {best - last:+.1f} |")
    return lines


def report(rows: list[dict], probs: dict) -> None:
    whole = set(complete(rows))  # only (setting, seed) pairs where all three candidates ran
    rows = [r for r in rows if r["variant"] == "unadapted" or (r["setting"], r["seed"]) in whole]
    machines = sorted({f"{r['machine']} ({r['device']})" for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    dates = sorted({r["date"][:10] for r in rows if r.get("date")})
    pairs = complete(rows)
    corr, means = correlation_table(rows)
    sel, summary = selection_table(rows, probs)
    best_validator = max((v for v in means if means[v] is not None), key=lambda v: means[v], default=None)
    lines = [
        "# Choosing the adaptation without target labels (issue 17, candidates on the faithful terms)", "",
        "The candidates of `adapt --select auto` as built when this grid ran: SOCKET's terms as the paper wrote "
        "them ([faithful_socket](faithful_socket.md)), socket-plus's single-run preset of then on them (λ_TI "
        "fading over training, `--ti-schedule cosine`; the candidates are now SOCKET itself, named socket and "
        "socket-adapter, one adaptation each), a fifth of the TI pairs held out for the validators, encoder "
        "dropout off; the "
        "faithful_socket study's source models. The same grid with socket-plus's earlier preset (L_d as the "
        "Gaussian KL): [select_auto_kl](select_auto_kl.md); on the form before issue 22: "
        "[select_auto_earlier](select_auto_earlier.md).", "",
        "Reproduce: `.venv/bin/python benchmarks/select_auto.py run --rgbnir PATH/rgbnir212 --workers 2` "
        "(resumable; then `report`). The six settings and source recipes of the socket-plus benchmark "
        "(ImageNet MobileNetV2; rgbnir212 at 128 px, synthetic scenes at 64 px, 40 per class); adapt's defaults "
        "(15 epochs, batch 32, lr 0.01). Each target is split by file: a fixed 20 % (validators.holdout over the "
        "file paths) is never adapted on. **Transductive** accuracy: on the adapted 80 % (as in the paper); "
        "**inductive**: on the held-out 20 %, frames the adaptation never saw. The TI pairs are split the same "
        "way: SOCKET trains on four fifths, every method is scored on the held-out fifth.", "",
        f"Ran on: {', '.join(machines)}; one thread per run, two runs at a time, on a machine shared with other "
        f"jobs. Seeds run: {', '.join(map(str, seeds))}; (setting, seed) pairs with all three candidates: "
        f"{len(pairs)} of {len(SETTINGS) * 3}. Recorded on {', '.join(dates) or '?'}. Each session trains the "
        "source models afresh, and training repeats bit for bit on one machine only: compare runs of one session "
        "(the [faithful study](faithful_socket.md#goals) says why and by how much).", "",
        "## Accuracy (transductive / inductive, %, mean over the seeds run)", "", *accuracy_table(rows), "",
        "Frames adapted on / held out per setting: " + ", ".join(
            f"{s} {r['n_adapt']} / {r['n_held']}" for s in SETTINGS
            for r in [next((r for r in rows if r["setting"] == s), None)] if r) + " (one held-out frame is worth up to "
        f"{100 / min((r['n_held'] for r in rows), default=1):.1f} points: the inductive numbers are the "
        "noisier).", "",
        "base = SHOT with one source, DECISION with two; socket-plus-adapter = socket-plus with `--ti-adapter`.", "",
        "## Rank correlation of the label-free validators with labelled accuracy", "",
        "Spearman ρ with the transductive accuracy, signed so that + means the validator ranks the more accurate "
        "run higher (IM and the TI KL are negated: lower is better). Within a setting: its adapted runs (3 "
        "candidates × seeds, final epoch); runs × epochs: every epoch ≥ 1 of those runs; pooled: every adapted "
        "run of every setting together (mixes the settings' difficulty). The last column: within a setting, "
        "with the inductive accuracy of the final epoch.", "", *corr, "",
        f"Highest mean within-setting ρ over runs × epochs (the column with the most points per setting): "
        f"**{best_validator}**. That is the validator `--select auto` should use by default; it is chosen here on "
        "the settings it is then scored on, so the goal check below is optimistic for it.", "",
        "## The pick against base and the best in hindsight", "",
        "Per (setting, seed), the candidate each rule keeps among base / socket-plus / socket-plus-adapter "
        "(final epoch; label-free ties go to the lower TI KL, then to base), its transductive / inductive "
        "accuracy, mean over the complete seeds; best in hindsight: the best candidate by each accuracy. "
        f"{' or '.join(map(str, LABELLED))} labelled frames: a fixed draw from the adapted "
        "split per setting and seed (a user labels a few frames of their own capture), never from the held-out "
        "split.", "", *sel, "",
        "## Choosing the epoch within a run", "", *epoch_table(rows), "",
    ]
    lines += goals(summary, best_validator)
    rules = [r for r in (f"pick by {best_validator}", *(f"pick by {n} labelled frames" for n in LABELLED),
                         "best in hindsight")
             if r in summary]
    if rules:
        plot_gains(summary, rules, PLOT)
        lines += [f"![gain over base of each rule's pick](../img/{PLOT.name})", ""]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(REPORT, "\n".join(lines) + "\n")
    print("\n".join(lines))


def goals(summary: dict, validator: str | None) -> list[str]:
    """Issue 17's goals, stated against the measured numbers."""
    out = ["## Goals", ""]
    rule = f"pick by {validator}" if validator else None
    for name, need_mean, need_worst in ((rule, 2.0, -1.0), (f"pick by {LABELLED[0]} labelled frames", 3.0, None),
                                        (f"pick by {LABELLED[-1]} labelled frames", 3.0, None)):
        if name not in summary:
            out.append(f"- {name}: not measured")
            continue
        s = summary[name]
        parts = {f"mean ≥ {need_mean:+.0f} {kind}": s["mean"][i] >= need_mean
                 for i, kind in enumerate(("transductive", "inductive"))}
        if need_worst is not None:
            parts.update({f"worst setting ≥ {need_worst:+.0f} {kind}": s["worst"][i] >= need_worst
                          for i, kind in enumerate(("transductive", "inductive"))})
        ceiling = summary["best in hindsight"]["mean"]
        verdict = "met" if all(parts.values()) else "not met (" + "; ".join(
            f"{part}: {'yes' if ok else 'no'}" for part, ok in parts.items()) + ")"
        out.append(f"- {name}: mean gain over base {s['mean'][0]:+.1f} (transductive) / {s['mean'][1]:+.1f} "
                   f"(inductive), worst setting {s['worst'][0]:+.1f} / {s['worst'][1]:+.1f}, over "
                   f"{s['settings']} settings: goal {verdict}; the ceiling (best candidate in hindsight) is "
                   f"{ceiling[0]:+.1f} / {ceiling[1]:+.1f}.")
    return out + ["", "The ceiling takes, per setting and seed, the best of three noisy accuracies, so it is biased "
                  "upwards; the inductive numbers rest on 30 (rgbnir) or 48 (synthetic) held-out frames per run.", ""]


def plot_gains(summary: dict, rules: list[str], out) -> None:
    """Gain over base per setting and on average, transductive and inductive, one bar per rule; the
    goals as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s for s in SETTINGS if all(s in summary[r]["gains"] for r in rules)] + ["mean"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), sharey=True)
    width = 0.8 / len(rules)
    for panel, (ax, title) in enumerate(zip(axes, ("transductive (adapted frames)", "inductive (held-out frames)"))):
        for k, rule in enumerate(rules):
            gains = [summary[rule]["gains"][s][panel] for s in names[:-1]]
            values = gains + [summary[rule]["mean"][panel]]
            ax.bar(np.arange(len(names)) + (k - (len(rules) - 1) / 2) * width, values, width, label=rule)
        ax.axhline(0, color="k", lw=0.8)
        ax.axhline(2, color="tab:green", lw=0.8, ls="--", label="goal without labels: mean ≥ +2")
        ax.axhline(-1, color="tab:red", lw=0.8, ls=":", label="goal: never below −1")
        ax.set_xticks(range(len(names)), [n.replace(" ", "\n", 1) for n in names], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy gain over base (points)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle("adapt --select auto: the kept candidate against base (mean over the complete seeds)", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(out, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)

