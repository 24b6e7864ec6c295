"""The replication's averaged adaptations (`adapt --repeats K`, socket-plus's preset K = 3), composed from the
recorded runs' class probabilities: the model `--repeats K` writes predicts the mean of its K ensembles'
probabilities, and the K runs it makes are the runs recorded here with seeds SEED … SEED+K−1 (training repeats
bit for bit on one machine). A section of docs/benchmarks/faithful_socket.md (faithful_socket_report.py)."""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

from socket_edge import atomic

K = 3  # socket-plus's preset (config.PRESETS)
VARIANTS = ("base", "socket λ 0.25", "socket, cosine λ_TI", "socket, cosine λ_TI, TI warm-up")
SOCKET = "socket λ 0.25"
FRESH_SEEDS = (5, 6, 7)  # run after K = 3 of socket λ 0.25 was chosen as socket-plus on seeds 0–4


def _accuracy(records: list[dict], part: str) -> float:
    """Accuracy (%) of the mean of the records' probabilities on `part` ("adapt" or "held")."""
    import numpy as np

    probs = np.mean([r[part]["probs"] for r in records], axis=0)
    return 100.0 * float(np.mean(probs.argmax(axis=1) == np.array(records[0][part]["labels"])))


def _runs(rows: list[dict], probs: dict[str, dict]) -> dict[tuple[str, str], dict[int, dict]]:
    """(setting, variant) → seed → probabilities, for the runs whose probabilities were recorded, each setting on
    the sources of its first row (runs pair only on equal sources)."""
    sources, found = {}, {}
    for row in rows:
        same = sources.setdefault(row["setting"], row.get("sources")) == row.get("sources")
        if same and row["key"] in probs and row["variant"] in VARIANTS:
            found.setdefault((row["setting"], row["variant"]), {})[row["seed"]] = probs[row["key"]]
    return found


def expected(runs: dict[int, dict], k: int, seeds: list[int] | None = None) -> tuple[float, float] | None:
    """(transductive, inductive) accuracy of the mean of k runs, averaged over every k of `seeds` (all recorded
    seeds by default): what `--repeats k` gives on these sources, in expectation over its seeds."""
    seeds = sorted(runs) if seeds is None else seeds
    if len(seeds) < k:
        return None
    scores = [[_accuracy([runs[s] for s in chosen], part) for part in ("adapt", "held")]
              for chosen in itertools.combinations(seeds, k)]
    return statistics.mean(s[0] for s in scores), statistics.mean(s[1] for s in scores)


def _seeds(per_setting: list[dict]) -> str:
    """How many seeds are behind a row: "8 seeds", or "5–7 seeds" where the settings differ."""
    counts = sorted(len(r) for r in per_setting if r)
    return f"{counts[0]} seeds" if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]} seeds"


def _cell(value: tuple[float, float] | None) -> str:
    return "–" if value is None else f"{value[0]:.1f} / {value[1]:.1f}"


def _both(value: tuple[float, float]) -> float:
    return (value[0] + value[1]) / 2


def repeats_lines(rows: list[dict], probs: dict[str, dict], plot: Path) -> list[str]:
    """The section: a table of single runs against means of K runs per variant and setting, the goals of
    socket-plus on it, the fresh seeds' check, and its picture at `plot`."""
    runs = _runs(rows, probs)
    settings = list(dict.fromkeys(s for s, v in runs if v == "base"))
    table = {(s, v, k): expected(runs.get((s, v), {}), k) for s in settings for v in VARIANTS for k in (1, K)}
    if not settings or any(table[s, SOCKET, K] is None or table[s, "base", 1] is None for s in settings):
        return []
    lines = [f"## Averaged adaptations: `--repeats {K}`, socket-plus's preset", "",
             f"The model `adapt --repeats {K}` writes predicts the mean of the class probabilities of {K} adaptations "
             f"(seeds SEED … SEED+{K - 1}). Each row ×{K} is composed from the runs above: their recorded "
             f"probabilities averaged, over every {K} of the seeds recorded for that variant and setting (training "
             f"repeats bit for bit on one machine, so these are the runs `--repeats {K}` makes); its row ×1 is the "
             "mean of the same runs alone. Transductive / inductive, mean over the combinations; no interval (the "
             "combinations share runs). It costs "
             f"{K}× the adaptation time and {K}× the members, so {K}× the inference.", "",
             "| variant | " + " | ".join(settings) + " | mean |", "|---|" + "---|" * (len(settings) + 1)]
    for variant in [v for v in VARIANTS if any((s, v) in runs for s in settings)]:
        for k in (1, K):
            cells = [table[s, variant, k] for s in settings]
            mean = None if None in cells else tuple(statistics.mean(c[i] for c in cells) for i in (0, 1))
            name = f"{variant} ×{k}" + (f" ({_seeds([runs.get((s, variant), {}) for s in settings])})" if k == 1 else "")
            lines.append(f"| {'**' + name + '** (socket-plus)' if (variant, k) == (SOCKET, K) else name} | "
                         + " | ".join(map(_cell, cells)) + f" | {_cell(mean)} |")

    def gain(variant: str, k: int, reference: str, r: int) -> list[float]:
        return [_both(table[s, variant, k]) - _both(table[s, reference, r]) for s in settings]

    plus, verdict = f"{SOCKET} ×{K}", (lambda ok: "**met**" if ok else "**not met**")
    over_socket, over_base = gain(SOCKET, K, SOCKET, 1), gain(SOCKET, K, "base", 1)
    worst = min(zip(over_base, settings))
    lines += ["", "Goals ((transductive + inductive) / 2, per setting, then the mean over the settings):", "",
              f"- socket-plus ({plus}) − {SOCKET} ≥ +2 on the mean: {statistics.mean(over_socket):+.1f} (per setting "
              + ", ".join(f"{g:+.1f}" for g in over_socket) + f") → {verdict(statistics.mean(over_socket) >= 2)}",
              f"- socket-plus never below base − 1 on a setting: worst {worst[0]:+.1f} ({worst[1]}) → "
              f"{verdict(worst[0] >= -1)}",
              f"- at equal cost, {plus} − base ×{K}: {statistics.mean(gain(SOCKET, K, 'base', K)):+.1f}; what "
              f"averaging gains each variant (×{K} − ×1): "
              + "; ".join(f"{v} {statistics.mean(gain(v, K, v, 1)):+.1f}" for v in VARIANTS
                          if all(table[s, v, K] for s in settings))]
    lines += _fresh_lines(runs, table, settings)
    _plot(table, settings, plot)
    lines += ["", f"![single runs against the mean of {K}, per setting](../img/{plot.name})"]
    return lines


def _fresh_lines(runs: dict, table: dict, settings: list[str]) -> list[str]:
    """The one model of seeds FRESH_SEEDS (`--seed 5 --repeats 3`), run after the choice, against those seeds'
    single runs and base's mean."""
    fresh = {s: runs.get((s, SOCKET), {}) for s in settings}
    if not all(set(FRESH_SEEDS) <= set(r) for r in fresh.values()):
        return []
    composed = {s: expected(fresh[s], K, list(FRESH_SEEDS)) for s in settings}
    single = {s: expected(fresh[s], 1, list(FRESH_SEEDS)) for s in settings}
    over_socket = [_both(composed[s]) - _both(single[s]) for s in settings]
    over_base = [_both(composed[s]) - _both(table[s, "base", 1]) for s in settings]
    return ["", f"Seeds {FRESH_SEEDS[0]}–{FRESH_SEEDS[-1]}, run after this preset was chosen on the runs of seeds 0–4 "
            f"(its offline check), which that choice never saw: `--seed {FRESH_SEEDS[0]} --repeats {K}` per setting "
            "(transductive / inductive): " + ", ".join(f"{s} {_cell(composed[s])}" for s in settings) + ".",
            "", f"- against those seeds' single runs: {statistics.mean(over_socket):+.1f} on the mean (per setting "
            + ", ".join(f"{g:+.1f}" for g in over_socket) + ")",
            f"- against base ×1 (its seeds above): {statistics.mean(over_base):+.1f} on the mean, worst "
            f"{min(over_base):+.1f} ({settings[over_base.index(min(over_base))]})"]


def _plot(table: dict, settings: list[str], path: Path) -> None:
    """(transductive + inductive) / 2 per setting: each variant's single run (hollow) joined to its mean of K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [v for v in VARIANTS if all(table[s, v, K] for s in settings)]
    columns = [*settings, "mean"]
    fig, ax = plt.subplots(figsize=(13, 4.5))
    width = 0.8 / len(shown)
    for n, variant in enumerate(shown):
        colour = plt.get_cmap("tab10").colors[n]
        ends = []
        for k in (1, K):
            ys = [_both(table[s, variant, k]) for s in settings]
            ends.append([*ys, statistics.mean(ys)])
        xs = [j + (n - len(shown) / 2 + 0.5) * width for j in range(len(columns))]
        ax.vlines(xs, ends[0], ends[1], color=colour, linewidth=2)
        ax.plot(xs, ends[0], "o", mfc="white", color=colour, markersize=6)
        ax.plot(xs, ends[1], "o", color=colour, markersize=7, label=variant)
    ax.set_xticks(range(len(columns)), columns, fontsize=8)
    ax.set_ylabel("(transductive + inductive) / 2 (%)")
    ax.set_title(f"one adaptation (hollow) → the mean of {K} (--repeats {K}, filled)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.25), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
