"""Issue 17: choosing the adaptation without target labels. On the six settings of the socket-plus
benchmark (same data, same source recipes), the candidates of `adapt --select auto` (base, socket-plus,
socket-plus with the input adapter) and the unadapted ensemble; transductive accuracy (the adapted
images, as in the paper) and inductive accuracy (a fixed 20 % of the target files, by file name, never
used in adaptation); the label-free validators per epoch; the choice with 20 labelled frames.

    .venv/bin/python benchmarks/select_auto.py run --rgbnir PATH [--workers 2] [--seeds 0 1 2] [--deadline S]
    .venv/bin/python benchmarks/select_auto.py report

Results: benchmarks/results/select_auto_cosine.jsonl (one line per run, resumable; the candidates on
issue 22's faithful terms with socket-plus's preset of today, with the faithful_socket study's sources: its
work folder runs/faithful), the runs' class probabilities on both splits beside it (gzipped); the report is
docs/benchmarks/select_auto.md (select_auto_report.py); the variants and candidates are in select_auto_grid.py.
The held-out split is read only at the end of each run, to measure it; nothing is tuned on it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import as_completed
from pathlib import Path

import socket_plus as sp
from holdout import split_folder
from results_io import cpu_model, done_keys, pages_or_one_line, probability_records, rows_to_report
from select_auto_grid import RESULTS, ROOT, VARIANTS
from socket_edge.data.identity import file_digest


def split(inputs: dict, work: Path) -> dict:
    """The setting's target split by file (holdout.split_folder): adapt on adapt/, measure on held/."""
    root = work / "splits" / hashlib.sha1(inputs["name"].encode()).hexdigest()[:10]
    adapt, held = split_folder(Path(inputs["target"]), root, inputs.get("classes"))
    return {**inputs, "target": adapt, "eval_data": adapt, "held": held}


def adapt_job(key: str, setting: str, variant: str, seed: int, inputs: dict, work: Path, epochs: int | None,
              variants: dict[str, dict] = VARIANTS) -> dict:
    """One adaptation with the options `variants[variant]`; its record: transductive and inductive accuracy,
    per-epoch accuracy, validators, term balance (gradient norms) and the source models' digests (runs pair
    only on equal sources: source training repeats bit for bit on one machine, not from one to the next)."""
    sp._threads()
    from socket_edge.adapt.config import AdaptConfig
    from socket_edge.adapt.trainer import adapt

    options = {"method": "decision" if len(inputs["sources"]) > 1 else "shot", **variants[variant]}
    config = AdaptConfig.for_method(options.pop("method"), modality=inputs["modality"], seed=seed, epochs=epochs,
                                    **options)
    started = time.time()
    out = work / "runs" / f"{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    result = adapt(config, inputs["sources"], inputs["target"], out, ti_source=inputs["ti_source"],
                   ti_target=inputs["ti_target"], eval_data=inputs["eval_data"], classes=inputs.get("classes"),
                   ti_classes=inputs.get("ti_classes"), overwrite=True, progress=False)
    history = result["epochs"]
    probs = {name: sp.eval_probs(out, inputs[folder], inputs.get("classes"))
             for name, folder in (("adapt", "eval_data"), ("held", "held"))}
    held = probs["held"]
    inductive = 100.0 * sum(int(max(range(len(p)), key=p.__getitem__) == y)
                            for p, y in zip(held["probs"], held["labels"])) / len(held["labels"])
    record = {
        "key": key, "setting": setting, "variant": variant, "seed": seed, "config": config.to_dict(),
        "accuracy": result["accuracy"], "inductive": round(inductive, 2),
        "per_epoch": [h["accuracy"] for h in history], "zeta": result["zeta"],
        "seconds": round(time.time() - started, 1), "device": sp._device(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
        "n_adapt": len(probs["adapt"]["labels"]), "n_held": len(held["labels"]), "probs": probs,
        "sources": [file_digest(Path(path)) for path in inputs["sources"]], "cpu": cpu_model(),
    }
    for name in ("im", "agree", "snd", "ti_agree", "ti_kl", "grad_norms"):
        record[name] = [h.get(name) for h in history]
    return record


def jobs_to_run(work: Path, rgbnir: Path, results: Path, seeds: list[int], chosen: list[str]) -> list[tuple]:
    done = done_keys(results)
    every = {k: v for k, v in sp.settings(work, rgbnir).items() if k in chosen}
    jobs = []
    for seed in seeds:  # seed by seed and setting by setting, so that a deadline leaves whole settings
        for setting, inputs in every.items():
            for variant in VARIANTS:
                if variant == "unadapted" and seed != seeds[0]:
                    continue
                key = f"{setting}/{variant}/{seed}"
                if key not in done:
                    jobs.append((key, setting, variant, seed, split(inputs, work)))
    return jobs


def run(args: argparse.Namespace, queue_for: Callable[[Path, list[str]], list[tuple]] | None = None,
        variants: dict[str, dict] = VARIANTS) -> None:
    """The sources the chosen settings need, then the adaptation runs `queue_for(work, settings)` gives
    (default: this grid's), `args.workers` at a time, each with the options `variants[variant]`."""
    started = time.time()
    work = args.work
    (work / "runs").mkdir(parents=True, exist_ok=True)
    known = list(sp.settings(work, args.rgbnir))
    chosen = args.settings or known
    if set(chosen) - set(known):
        raise SystemExit(f"unknown --settings {', '.join(sorted(set(chosen) - set(known)))}; the settings here: "
                         + ", ".join(repr(k) for k in known))
    pool = sp.worker_pool(args.workers)
    sources = [pool.submit(sp.train_source, job) for job in sp.prepare(work, args.rgbnir, False, chosen)]
    for done in as_completed(sources):
        print(f"[{time.time() - started:5.0f} s] source {done.result()}", flush=True)
    queue = queue_for(work, chosen) if queue_for else jobs_to_run(work, args.rgbnir, args.results, args.seeds, chosen)
    print(f"{len(queue)} adaptation runs, {args.workers} workers", flush=True)
    sp.run_queue(pool, queue, lambda job: pool.submit(adapt_job, *job, work, args.epochs, variants), args.results,
                 args.workers, args.deadline, started,
                 lambda entry: f"{entry.get('accuracy', entry.get('error'))} / {entry.get('inductive', '')}")
    pool.shutdown(cancel_futures=True)


def grid_parser(doc: str, work: Path, results: Path) -> argparse.ArgumentParser:
    """The command line of a grid of adaptation runs (this one, faithful_socket.py): run or report."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("action", choices=("run", "report"))
    parser.add_argument("--work", type=Path, default=work)
    parser.add_argument("--rgbnir", type=Path, default=sp.RGBNIR)
    parser.add_argument("--results", type=Path, default=results)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=float("inf"), help="start no run after this many seconds")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(sp.SEEDS))
    parser.add_argument("--settings", nargs="*", help="default: all (rgbnir ones where the data are found)")
    parser.add_argument("--epochs", type=int, default=None, help="default: adapt's (15)")
    return parser


def main() -> None:
    parser = grid_parser(__doc__, ROOT / "runs" / "faithful", RESULTS)  # the faithful_socket study's sources and splits
    args = parser.parse_args()
    if args.action == "run":
        run(args)
    else:
        from select_auto_report import report

        with pages_or_one_line():
            report(rows_to_report(args.results), probability_records(args.results))


if __name__ == "__main__":
    main()
