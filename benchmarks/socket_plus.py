"""socket-plus (issue 7): every lever of AdaptConfig against SHOT/DECISION and the paper's SOCKET,
3 seeds, on rgbnir212 (RGB→NIR, NIR→RGB) and the synthetic RGB-D scenes (each domain single-source,
kv1 + kv2 → rs two-source). Many small runs in parallel processes; made for a GPU, runs on a CPU.

    .venv/bin/python benchmarks/socket_plus.py run [--workers 8] [--deadline 400]   # resumable
    .venv/bin/python benchmarks/socket_plus.py report                              # tables only

Results: benchmarks/results/socket_plus.jsonl (one line per run, a finished run is never
repeated). Each line holds the per-epoch accuracy AND the per-epoch label-free scores (the
information-maximisation objective on the target, its entropy and diversity parts, the
agreement of predictions with the clustering pseudo-labels), so label-free rules for choosing
a variant or an epoch are evaluated on the same runs. The report is docs/benchmarks/socket_plus.md
(socket_plus_report.py); the variants, seeds and paths are in socket_plus_grid.py.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from results_io import append, done_keys, pages_or_one_line, probs_file, rows, rows_to_report
from socket_plus_grid import CPU_RESULTS, PRIORITY, RESULTS, RGBNIR, ROOT, SEEDS, TI, TR, VARIANTS


def cli(*argv: object) -> None:
    from socket_edge.cli import main

    code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"failed ({code}): socket-edge {' '.join(map(str, argv))}")


def _die_with_parent() -> None:
    """In each worker: Linux sends it SIGTERM when the runner ends, however it ends (a killed runner
    left its workers training for minutes, recording nothing)."""
    if platform.system() == "Linux":
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The grids' process pool: fresh interpreters (spawn), each ended with the runner (the signal follows
    the thread that started the worker: the pool starts them from `submit`, in the runner's main thread)."""
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_die_with_parent)


def settings(work: Path, rgbnir: Path) -> dict[str, dict]:
    """Setting name → the inputs of adapt: sources, target, TI roots, classes."""
    scenes = work / "scenes"
    out = {}
    if rgbnir.is_dir():
        for src, tgt in (("rgb", "nir"), ("nir", "rgb")):
            out[f"rgbnir {src.upper()}→{tgt.upper()}"] = {
                "sources": [work / f"rgbnir_{src}.pt"], "target": rgbnir / tgt, "modality": tgt,
                "ti_source": rgbnir / src, "ti_target": rgbnir / tgt, "classes": TR.split(","),
                "ti_classes": TI.split(","), "eval_data": rgbnir / tgt}
    for d in ("kv1", "kv2", "rs"):
        out[f"synth {d}"] = {"sources": [work / f"synth_{d}.pt"], "target": scenes / d / "depth", "modality": "depth",
                             "ti_source": scenes / d / "ti" / "rgb", "ti_target": scenes / d / "ti" / "depth",
                             "eval_data": scenes / d / "depth"}
    out["synth kv1+kv2→rs"] = {**out["synth rs"], "sources": [work / "synth_kv1.pt", work / "synth_kv2.pt"]}
    return {name: {**inputs, "name": name} for name, inputs in out.items()}


def prepare(work: Path, rgbnir: Path, quick: bool, chosen: list[str]) -> list[tuple]:
    """Scenes (once) and the source-training commands the chosen settings still need."""
    scenes = work / "scenes"
    if not scenes.exists():
        cli("synth", scenes, "--per-class", 8 if quick else 40, "--size", 64, "--domains", "kv1", "kv2", "rs", "-q")
    epochs = 1 if quick else None
    jobs = []
    if rgbnir.is_dir():
        for mod in ("rgb", "nir"):
            jobs.append((work / f"rgbnir_{mod}.pt", "--data", rgbnir / mod, "--classes", TR, "--modality", mod,
                         "--arch", "mobilenet_v2", "--weights", "imagenet", "--img-size", 64 if quick else 128,
                         "--epochs", epochs or 20))
    for d in ("kv1", "kv2", "rs"):
        jobs.append((work / f"synth_{d}.pt", "--data", scenes / d / "rgb", "--arch", "mobilenet_v2", "--weights",
                     "imagenet", "--img-size", 64, "--epochs", epochs or 15))
    needed = {src for inputs in settings(work, rgbnir).values() if inputs["name"] in chosen for src in inputs["sources"]}
    return [j for j in jobs if not j[0].exists() and j[0] in needed]


def train_source(job: tuple) -> str:
    _threads()
    out, *argv = job
    cli("train-source", "--out", out, "-q", *argv)
    return str(out)


def _threads() -> None:
    import torch

    torch.set_num_threads(1)


def adapt_job(key: str, setting: str, variant: str, seed: int, inputs: dict, options: dict, work: Path,
              epochs: int | None) -> dict:
    """One adaptation; its record (final and per-epoch accuracy, label-free scores, ζ, time)."""
    _threads()
    from socket_edge.adapt.config import AdaptConfig
    from socket_edge.adapt.trainer import adapt

    two = len(inputs["sources"]) > 1
    options = {"method": "decision" if two else "shot", **options}
    method = options.pop("method")
    config = AdaptConfig.for_method(method, modality=inputs["modality"], seed=seed, epochs=epochs, **options)
    uses_ti = config.uses_ti
    started = time.time()
    out = work / "runs" / f"{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    result = adapt(config, inputs["sources"], inputs["target"], out,
                   ti_source=inputs["ti_source"] if uses_ti else None, ti_target=inputs["ti_target"] if uses_ti else None,
                   eval_data=inputs["eval_data"], classes=inputs.get("classes"),
                   ti_classes=inputs.get("ti_classes") if uses_ti else None, overwrite=True, progress=False)
    history = result["epochs"]
    return {
        "key": key, "setting": setting, "variant": variant, "seed": seed, "config": config.to_dict(),
        "accuracy": result["accuracy"], "per_epoch": [h["accuracy"] for h in history],
        "im": [h["im"] for h in history], "ent": [h["ent"] for h in history], "div": [h["div"] for h in history],
        "agree": [h.get("agree") for h in history], "zeta": result["zeta"],
        "seconds": round(time.time() - started, 1), "device": str(_device()),
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
        "probs": eval_probs(out, inputs["eval_data"], inputs.get("classes")),
    }


def eval_probs(model_path: Path, data: Path, classes: list[str] | None) -> dict:
    """The adapted model's class probabilities on the eval images (rounded) and their labels, so that
    ensembles of runs and label-free choices among runs can be scored afterwards."""
    from socket_edge.backends import open_model
    from socket_edge.data.folders import class_folders, contract_labels
    from socket_edge.data.loading import load_frames

    model = open_model(model_path)
    images = class_folders(data, "evaluation data", classes)
    frames = load_frames(images.files, model.contract, progress=False)
    probs = model.predict(frames, 64, False)
    return {"labels": contract_labels(images, model.contract, "eval").tolist(), "probs": probs.astype("float64").round(4).tolist()}


def _device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def jobs_to_run(work: Path, rgbnir: Path, results: Path, variants: list[str], seeds: tuple[int, ...],
                chosen: list[str]) -> list[tuple]:
    done = done_keys(results)
    jobs = []
    all_settings = {k: v for k, v in settings(work, rgbnir).items() if k in chosen}
    for setting, inputs in all_settings.items():  # the unadapted ensembles first: one run each
        key = f"{setting}/unadapted/0"
        if key not in done:
            jobs.append((key, setting, "unadapted", 0, inputs, {"method": "none"}))
    for variant in variants:  # priority order, so that a deadline cuts the least important variants
        where, options = VARIANTS[variant]
        for seed in seeds:
            for setting, inputs in all_settings.items():
                two = len(inputs["sources"]) > 1
                if where == "both" or where == ("two" if two else "single"):
                    key = f"{setting}/{variant}/{seed}"
                    if key not in done:
                        jobs.append((key, setting, variant, seed, inputs, options))
    return jobs


def run(args: argparse.Namespace) -> None:
    started = time.time()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    (work / "runs").mkdir(exist_ok=True)
    pool = worker_pool(args.workers)
    chosen = args.settings or list(settings(work, args.rgbnir))
    sources = prepare(work, args.rgbnir, args.quick, chosen)
    for done in as_completed([pool.submit(train_source, job) for job in sources]):
        print(f"[{time.time() - started:5.0f} s] source {done.result()}", flush=True)
    variants = args.variants or PRIORITY
    jobs = jobs_to_run(work, args.rgbnir, args.results, variants, tuple(args.seeds), chosen)
    print(f"{len(jobs)} adaptation runs, {args.workers} workers", flush=True)
    run_queue(pool, list(jobs), lambda job: pool.submit(adapt_job, *job, work, 1 if args.quick else None),
              args.results, args.workers, args.deadline, started)
    pool.shutdown(cancel_futures=True)


def run_queue(pool: ProcessPoolExecutor, queue: list[tuple], submit, results: Path, workers: int, deadline: float,
              started: float, describe=lambda entry: entry.get("accuracy", entry.get("error"))) -> None:
    """Run the jobs of `queue` (each keyed by its first item) `workers` at a time through `submit`,
    starting none after `deadline` seconds from `started`; append each run's line (or its error:
    one failed run must not stop the others) to `results` and its eval probabilities beside it."""
    pending = {}
    results.parent.mkdir(parents=True, exist_ok=True)
    while queue or pending:
        while queue and len(pending) < workers and time.time() - started < deadline:
            job = queue.pop(0)
            pending[submit(job)] = job[0]
        if not pending:
            print(f"deadline: {len(queue)} runs not started", flush=True)
            break
        finished = next(as_completed(pending))
        key = pending.pop(finished)
        try:
            entry = finished.result()
        except Exception as error:
            entry = {"key": key, "error": f"{type(error).__name__}: {error}"}
        probs = entry.pop("probs", None)
        append(results, entry)
        if probs is not None:
            with gzip.open(probs_file(results), "at") as f:  # appends a gzip member
                f.write(json.dumps({"key": key, **probs}) + "\n")
        print(f"[{time.time() - started:5.0f} s] {key}: {describe(entry)} ({entry.get('seconds', '?')} s)",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "report"))
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "socket_plus")
    parser.add_argument("--rgbnir", type=Path, default=RGBNIR)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=float("inf"), help="start no run after this many seconds")
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), help="default: all, in priority order")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--settings", nargs="*", help="default: all (rgbnir ones where the data are found)")
    parser.add_argument("--quick", action="store_true", help="1-epoch smoke test of the whole script")
    args = parser.parse_args()
    if args.action == "run":
        run(args)
    else:
        from socket_plus_report import report

        with pages_or_one_line():
            report(rows_to_report(args.results), rows(CPU_RESULTS))


if __name__ == "__main__":
    main()
