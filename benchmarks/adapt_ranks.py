"""CPU epoch time of `adapt`: one process with 2 threads against `torchrun` with 2 processes of
1 thread each, the same global batch (issue 14 §5).

    .venv/bin/python benchmarks/adapt_ranks.py [--per-class 40] [--epochs 3] [--work runs/bench_ranks]

Setting: synthetic scenes at 64 px (one sensor domain, 6 task classes as the target, 4 TI
classes as pairs), two ImageNet MobileNetV2 sources trained for 2 epochs on the scenes' RGB
images, `adapt --method socket` with batch 32; and, for the default of --workers on the CPU (0), one
process with 2 DataLoader worker processes. An epoch's time is the difference of consecutive
`elapsed_s` in metrics.jsonl (training steps plus the scan of the target set); the first epoch is
left out (warm-up). Run it alone on the machine. Writes benchmarks/results/adapt_ranks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from socket_edge import atomic

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "adapt_ranks.json"
SE = [sys.executable, "-m", "socket_edge"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
            "socket_edge"]


def sh(cmd: list[object], threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([str(c) for c in cmd], check=True, env=env, stdout=subprocess.DEVNULL)


def epoch_seconds(run_folder: Path) -> list[float]:
    elapsed = [json.loads(line)["elapsed_s"] for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    return [round(b - a, 1) for a, b in zip(elapsed, elapsed[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_ranks")
    args = parser.parse_args()
    scenes = args.work / "scenes"
    if not scenes.exists():
        sh(SE + ["synth", scenes, "--per-class", args.per_class, "--size", 64, "--domains", "kv2", "-q"], 2)
    domain = scenes / "kv2"
    sources = []
    for seed in (0, 1):
        src = args.work / f"src{seed}.pt"
        if not src.exists():
            sh(SE + ["train-source", "--data", domain / "rgb", "--img-size", 64, "--epochs", 2, "--seed", seed,
                     "--out", src, "-q"], 2)
        sources += ["--source", src]
    common = ["adapt", *sources, "--target", domain / "depth", "--modality", "depth", "--method", "socket",
              "--ti-source", domain / "ti" / "rgb", "--ti-target", domain / "ti" / "depth", "--epochs", args.epochs,
              "--batch-size", 32, "--cache-dir", args.work / "cache", "--overwrite", "-q"]
    result = {"setting": f"synthetic kv2 scenes, 64 px, {6 * args.per_class} target frames, 2× mobilenet_v2 "
                         "(ImageNet), socket, global batch 32", "load_at_start": os.getloadavg()[0]}
    runs = (("1 process × 2 threads", SE, 2, []), ("2 processes × 1 thread", TORCHRUN, 1, []),
            ("1 process × 2 threads, 2 DataLoader workers", SE, 2, ["--workers", 2]))
    for i, (name, launcher, threads, extra) in enumerate(runs):
        out = args.work / f"run{i}.pt"
        sh(launcher + common + extra + ["--out", out], threads)
        epochs = epoch_seconds(out.with_name(out.name + "-run"))
        result[name] = {"epoch_seconds": epochs, "mean_after_first": round(sum(epochs[1:]) / len(epochs[1:]), 1)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(OUT, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
