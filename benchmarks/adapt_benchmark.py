"""Adaptation benchmark (issue 3): unadapted / SHOT / DECISION / SOCKET on real RGB↔NIR pairs
(../shared/data/rgbnir212) and on the synthetic RGB-D scenes, over seeds; the ablation;
the cost of SOCKET against SHOT per iteration.

    .venv/bin/python benchmarks/adapt_benchmark.py --suite rgbnir synth cost   # resumable
    .venv/bin/python benchmarks/adapt_benchmark.py --report                    # tables only

Every run is one `socket-edge adapt` call with the defaults of the paper (15 epochs,
batch 32, lr 0.01, λ_pl 0.3, λ_TI = λ_d = 0.1, L_TI as the per-dimension mean) and the
final epoch is reported: no target labels choose anything. Each target is split by file
(holdout.py, issue 17): adapt runs on 80 % and reports the accuracy there (transductive, as in
the paper); the held-out 20 % gives the inductive accuracy. Results are appended to
benchmarks/results/adapt_split.jsonl (a finished run is never repeated; adapt.jsonl holds the
earlier runs, adapted on every target file, transductive only, which the report shows until
the new file has runs) and the report goes to docs/benchmarks/adapt.md with plots in docs/img/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from holdout import split_folder
from socket_edge import atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "adapt_split.jsonl"
EARLIER = ROOT / "benchmarks" / "results" / "adapt.jsonl"  # adapted on every target file, no inductive accuracy
REPORT = ROOT / "docs" / "benchmarks" / "adapt.md"
RGBNIR = ROOT.parent / "shared" / "data" / "rgbnir212"
TR = "country,field,forest,indoor,mountain,oldbuilding"
TI = "street,urban,water"
SEEDS = (0, 1, 2)


def cli(*argv: str) -> None:
    from socket_edge.cli import main

    code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"failed ({code}): socket-edge {' '.join(map(str, argv))}")


def done_keys() -> set[str]:
    if not RESULTS.exists():
        return set()
    return {json.loads(line)["key"] for line in RESULTS.read_text().splitlines() if line.strip()}


def record(entry: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(entry) + "\n")


def adapt_run(key: str, suite: str, setting: str, variant: str, seed: int, work: Path, argv: list[str],
              held: Path) -> None:
    """One adaptation, recorded with its final and per-epoch accuracy and the accuracy on `held`."""
    if key in done_keys():
        return
    import torch

    from socket_edge.evaluation import evaluate

    out = work / f"{key.replace('/', '_')}.pt"
    started = time.time()
    cli("adapt", "--out", out, "--seed", seed, "--overwrite", "-q", *argv)
    data = torch.load(out, weights_only=True)
    history = data["provenance"]["metrics"]["epochs"]
    record({
        "key": key, "suite": suite, "setting": setting, "variant": variant, "seed": seed,
        "accuracy": history[-1]["accuracy"], "unadapted": history[0]["accuracy"],
        "inductive": evaluate(out, held, progress=False)["accuracy"],
        "per_epoch": [h["accuracy"] for h in history], "zeta": data["zeta"],
        "seconds": round(time.time() - started, 1),
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
    })


def train(out: Path, *argv: str) -> Path:
    """The source model `out` (trained once), recorded for the report's source table."""
    if not out.exists():
        cli("train-source", "--out", out, "-q", *argv)
    if f"source/{out.stem}" not in done_keys():
        import torch

        prov = torch.load(out, weights_only=True)["provenance"]
        m, c = prov["metrics"], prov["config"]
        record({"key": f"source/{out.stem}", "suite": "source", "name": out.stem, "data": shown_path(prov["data"]["root"]),
                "img_size": c["img_size"], "epochs": c["epochs"], "val_accuracy": m.get("val_accuracy"),
                "val_n": m["val_n"], "date": time.strftime("%Y-%m-%d")})
    return out


VARIANTS = {
    "unadapted": ["--method", "none"],
    "shot": ["--method", "shot"],
    "decision": ["--method", "decision"],
    "socket": ["--method", "socket"],
    "socket −L_d (L_ma + L_TI)": ["--method", "socket", "--lambda-d", "0"],
    "socket −L_TI (L_ma + L_d)": ["--method", "socket", "--lambda-ti", "0"],
}


def target_args(work: Path, name: str, target: Path, classes: str | None = None) -> tuple[list, Path]:
    """adapt's --target and --eval-data: the adapted 80 % of `target`; and the held-out 20 %."""
    adapt, held = split_folder(target, work / "splits" / name, classes.split(",") if classes else None)
    return ["--target", adapt, "--eval-data", adapt], held


def variant_runs(suite: str, setting: str, variants: list[str], work: Path, base: list, ti: list, held: Path,
                 seeds: tuple[int, ...] | None = None) -> None:
    """Each variant's runs over `seeds` (default: the seeds asked for), the unadapted one once."""
    for variant in variants:
        for seed in (0,) if variant == "unadapted" else [s for s in (seeds or SEEDS) if s in SEEDS]:
            extra = ti if VARIANTS[variant][1] == "socket" else []
            adapt_run(f"{suite}/{setting}/{variant}/{seed}", suite, setting, variant, seed, work,
                      base + VARIANTS[variant] + extra, held)


def suite_rgbnir(work: Path) -> None:
    """The paper's Table 6 protocol on the 212-pair subset, ImageNet MobileNetV2, 128 px."""
    if not RGBNIR.is_dir():
        print(f"skipping rgbnir: {RGBNIR} not found")
        return
    for src, tgt, name in (("rgb", "nir", "RGB→NIR"), ("nir", "rgb", "NIR→RGB")):
        source = train(work / f"rgbnir_{src}_source.pt", "--data", RGBNIR / src, "--classes", TR, "--modality", src,
                       "--arch", "mobilenet_v2", "--weights", "imagenet", "--img-size", "128", "--epochs", "20")
        target, held = target_args(work, f"rgbnir_{tgt}", RGBNIR / tgt, TR)
        base = ["--source", source, *target, "--classes", TR, "--modality", tgt]
        ti = ["--ti-source", RGBNIR / src, "--ti-target", RGBNIR / tgt, "--ti-classes", TI]
        variant_runs("rgbnir", name, ["unadapted", "shot", "socket"], work, base, ti, held)


def suite_synth(work: Path) -> None:
    """Synthetic RGB-D: each domain's RGB → its depth, and two domains → the third's depth."""
    scenes = work / "scenes"
    if not scenes.exists():
        cli("synth", scenes, "--per-class", "40", "--size", "64", "--domains", "kv1", "kv2", "rs", "-q")
    sources = {d: train(work / f"synth_{d}_rgb.pt", "--data", scenes / d / "rgb", "--arch", "mobilenet_v2",
                        "--weights", "imagenet", "--img-size", "64", "--epochs", "15") for d in ("kv1", "kv2", "rs")}

    def single(d: str) -> None:
        target, held = target_args(work, f"synth_{d}_depth", scenes / d / "depth")
        base = ["--source", sources[d], *target, "--modality", "depth"]
        ti = ["--ti-source", scenes / d / "ti" / "rgb", "--ti-target", scenes / d / "ti" / "depth"]
        variant_runs("synth", f"{d} RGB → {d} depth", ["unadapted", "shot", "socket"], work, base, ti, held)

    single("kv1")
    single("kv2")
    target, held = target_args(work, "synth_rs_depth", scenes / "rs" / "depth")
    base = ["--source", sources["kv1"], "--source", sources["kv2"], *target, "--modality", "depth"]
    ti = ["--ti-source", scenes / "rs" / "ti" / "rgb", "--ti-target", scenes / "rs" / "ti" / "depth"]
    two = "kv1 + kv2 RGB → rs depth"
    variant_runs("synth2", two, ["unadapted", "decision", "socket"], work, base, ti, held)
    # the ablation's partial variants (L_ma alone is DECISION, both is SOCKET): fewer seeds, for
    # time on 2 CPU cores; the first seed before the third domain's single-source runs
    ablation = ["socket −L_d (L_ma + L_TI)", "socket −L_TI (L_ma + L_d)"]
    variant_runs("synth2", two, ablation, work, base, ti, held, seeds=(0,))
    single("rs")
    variant_runs("synth2", two, ablation, work, base, ti, held, seeds=(1,))


def suite_cost(work: Path) -> None:
    """Seconds per iteration of SOCKET against SHOT, same data, batch 32, 128 px, one process."""
    if not RGBNIR.is_dir() or "cost/shot" in done_keys():
        return
    import torch

    source = work / "rgbnir_rgb_source.pt"
    base = ["--source", source, "--target", RGBNIR / "nir", "--classes", TR, "--modality", "nir", "--epochs", "3",
            "--batch-size", "32", "--overwrite", "-q"]
    ti = ["--ti-source", RGBNIR / "rgb", "--ti-target", RGBNIR / "nir", "--ti-classes", TI]
    for method in ("shot", "socket"):
        out = work / f"cost_{method}.pt"
        cli("adapt", "--out", out, "--method", method, *base, *(ti if method == "socket" else []))
        history = torch.load(out, weights_only=True)["provenance"]["metrics"]["epochs"]
        per_epoch = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(history, history[1:])]
        steps = 152 // 32
        record({"key": f"cost/{method}", "suite": "cost", "method": method, "torch_threads": torch.get_num_threads(),
                "seconds_per_epoch": per_epoch, "seconds_per_iteration": round(statistics.median(per_epoch) / steps, 3),
                "machine": f"{platform.machine()} {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")})


PAPER_TABLE6 = {  # ECCV 2022, Table 6: full EPFL set (477 pairs), ImageNet ResNet-50
    "RGB→NIR": {"unadapted": 84.8, "shot": 86.7, "socket": 90.2},
    "NIR→RGB": {"unadapted": 65.2, "shot": 92.2, "socket": 92.7},
}


def paper_comparison(runs: list[dict]) -> list[str]:
    """Our rgbnir212 numbers beside the paper's Table 6, and the SOCKET − SHOT gap per seed."""
    lines = ["## Against the paper (Table 6)", "",
             "| setting | unadapted here / paper | SHOT here / paper | SOCKET here / paper | SOCKET − SHOT here (per seed) / paper |",
             "|---|---|---|---|---|"]
    for setting, paper in PAPER_TABLE6.items():
        acc = {v: {r["seed"]: r["accuracy"] for r in runs if r["suite"] == "rgbnir" and r["setting"] == setting
                   and r["variant"] == v} for v in ("unadapted", "shot", "socket")}
        if not all(acc.values()):
            continue
        gaps = [acc["socket"][s] - acc["shot"][s] for s in sorted(acc["socket"]) if s in acc["shot"]]
        cells = [f"{mean_std(list(acc[v].values()))} / {paper[v]}" for v in ("unadapted", "shot", "socket")]
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {', '.join(f'{g:+.1f}' for g in gaps)} / "
                     f"{paper['socket'] - paper['shot']:+.1f} |")
    return lines + ["", "The paper uses all 477 pairs and ResNet-50; we use 212 pairs and MobileNetV2 at 128 px, so "
                    "absolute numbers differ; the ordering and the gaps are what compare.", ""]


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def shown_path(recorded: str) -> str:
    """A data path recorded in a provenance block, as the docs show it: without the machine's prefix
    (relative to the repository, e.g. runs/bench/scenes/kv1/rgb, or to ../shared, e.g. data/rgbnir212/nir)."""
    path = Path(recorded)
    for base in (ROOT, ROOT.parent / "shared"):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    for anchor, shown in (("/runs/", "runs/"), ("/shared/", "")):  # recorded in another clone
        if anchor in recorded:
            return shown + recorded.split(anchor, 1)[1]
    return path.name


def source_table(sources: list[dict]) -> list[str]:
    """Held-out accuracy of each source model (recorded when it was trained), the starting point."""
    lines = ["## Source models (train-source, ImageNet MobileNetV2, label smoothing 0.1)", "",
             "| source | data | size | epochs | held-out accuracy (n) |", "|---|---|---|---|---|"]
    for r in sources:
        lines.append(f"| {r['name']} | {r['data']} | {r['img_size']} px | {r['epochs']} | "
                     f"{r['val_accuracy'] if r['val_accuracy'] is not None else '–'} ({r['val_n']}) |")
    return lines + [""]


def report() -> None:
    """docs/benchmarks/adapt.md and its plots, from the recorded results."""
    new, earlier = (([json.loads(line) for line in f.read_text().splitlines()] if f.exists() else [])
                    for f in (RESULTS, EARLIER))
    # a suite with runs under the split protocol shows those; the others their earlier runs
    split_suites = {r["suite"] for r in new if r["suite"] != "source"}
    rows = new + [r for r in earlier if r["suite"] not in split_suites]
    runs = [r for r in rows if r["suite"] not in ("cost", "source")]
    sources = {r["name"]: r for r in rows if r["suite"] == "source"}  # a source retrained for the split: its new row
    sources.update({r["name"]: r for r in new if r["suite"] == "source"})
    lines = ["# Adaptation (`socket-edge adapt`)", "",
             "Reproduce: `.venv/bin/python benchmarks/adapt_benchmark.py --suite rgbnir synth cost`. "
             "Final-epoch accuracy (%): **transductive / inductive** where a table has both, on the adapted 80 % "
             "of the target's task images (as in the paper) / on the held-out 20 % (a fixed split by file, "
             f"benchmarks/holdout.py; {RESULTS.name}); transductive alone where a table's runs ({EARLIER.name}) "
             "adapted on every target file and predate the hold-out. Mean ± std over "
             "adaptation seeds 0/1/2 (n = seeds where fewer ran) from one source model; no target label chooses anything. "
             "Defaults of the paper: 15 epochs, batch 32, SGD lr 0.01 (backbone ×0.1), λ_pl 0.3, "
             "λ_TI = λ_d = 0.1, L_TI as the per-dimension mean of squared differences, L_d summed over layers.", ""]
    lines += source_table(sorted(sources.values(), key=lambda r: (not r["name"].startswith("rgbnir"), r["name"])))
    for suite, title in (("rgbnir", "Real RGB↔NIR (rgbnir212, ImageNet MobileNetV2, 128 px)"),
                         ("synth", "Synthetic RGB-D, single source (MobileNetV2 ImageNet, 64 px)"),
                         ("synth2", "Synthetic RGB-D, two sources, with the ablation")):
        subset = [r for r in runs if r["suite"] == suite]
        if not subset:
            continue
        settings = list(dict.fromkeys(r["setting"] for r in subset))
        variants = list(dict.fromkeys(r["variant"] for r in subset))
        lines += [f"## {title}", "", "| setting | " + " | ".join(variants) + " |",
                  "|---|" + "---|" * len(variants)]
        for setting in settings:
            cells = []
            for variant in variants:
                done = [r for r in subset if r["setting"] == setting and r["variant"] == variant]
                cell = mean_std([r["accuracy"] for r in done]) if done else "–"
                if done and "inductive" in done[0]:
                    cell += " / " + mean_std([r["inductive"] for r in done])
                if done and variant != "unadapted" and len(done) < len(SEEDS):
                    cell += f" (n={len(done)})"
                cells.append(cell)
            lines.append(f"| {setting} | " + " | ".join(cells) + " |")
        peak = [(r["setting"], r["variant"], max(r["per_epoch"]), r["accuracy"]) for r in subset if r["variant"] != "unadapted"]
        if peak:
            gap = statistics.mean(p - f for _, _, p, f in peak)
            lines += ["", f"Best epoch minus final epoch, averaged over these runs: {gap:.1f} points "
                          "(the peak cannot be chosen without target labels)."]
        lines.append("")
        plot(subset, settings, variants, ROOT / "docs" / "img" / f"adapt_{suite}.png", title)
        lines += [f"![{title}](../img/adapt_{suite}.png)", ""]
    lines += paper_comparison(runs)
    cost = {r["method"]: r for r in rows if r["suite"] == "cost"}
    if {"shot", "socket"} <= set(cost):
        ratio = cost["socket"]["seconds_per_iteration"] / cost["shot"]["seconds_per_iteration"]
        lines += ["## Cost per iteration (rgbnir212 RGB→NIR, batch 32, 128 px, "
                  f"{cost['shot']['torch_threads']} torch threads, {cost['shot']['machine']})", "",
                  "| method | s / iteration (incl. the per-epoch pseudo-label pass) |", "|---|---|",
                  f"| shot | {cost['shot']['seconds_per_iteration']} |",
                  f"| socket | {cost['socket']['seconds_per_iteration']} |", "",
                  f"SOCKET / SHOT = {ratio:.2f}× (goal ≤ 2.2×: SOCKET also runs the TI batch).", ""]
    timed = [r for r in rows if r["suite"] != "source"]
    machines = sorted({r.get("machine", "?") for r in timed})
    dates = sorted({r.get("date", "?") for r in timed})
    lines += [f"Machine: {', '.join(machines)} (CPU only); runs from {dates[0] if dates else '?'} to "
              f"{dates[-1] if dates else '?'}.", ""]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(REPORT, "\n".join(lines))
    print(f"wrote {REPORT}")


def plot(subset: list[dict], settings: list[str], variants: list[str], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(2.2 + 2.0 * len(settings), 3.4))
    for i, variant in enumerate(variants):
        means, stds = [], []
        for setting in settings:
            acc = [r["accuracy"] for r in subset if r["setting"] == setting and r["variant"] == variant]
            means.append(statistics.mean(acc) if acc else 0)
            stds.append(statistics.stdev(acc) if len(acc) > 1 else 0)
        ax.bar(np.arange(len(settings)) + i * width, means, width, yerr=stds, capsize=3, label=variant)
    ax.set_xticks(np.arange(len(settings)) + width * (len(variants) - 1) / 2, settings, fontsize=8)
    ax.set_ylabel("target accuracy (%)")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=min(len(variants), 5), loc="upper center")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(out, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def main() -> None:
    global SEEDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", nargs="*", default=[], choices=("rgbnir", "synth", "cost"))
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--report", action="store_true", help="only rewrite the report")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS), help="adaptation seeds (default 0 1 2)")
    args = parser.parse_args()
    SEEDS = tuple(args.seeds)
    args.work.mkdir(parents=True, exist_ok=True)
    for suite in args.suite:
        {"rgbnir": suite_rgbnir, "synth": suite_synth, "cost": suite_cost}[suite](args.work)
        report()
    report()


if __name__ == "__main__":
    main()
