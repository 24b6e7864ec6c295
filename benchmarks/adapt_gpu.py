"""GPU throughput of adaptation (issue 3, item 4): two ResNet-50 sources at 224 px in bf16,
images/s of `adapt --method shot`, `--method socket` and of plain supervised training of the
same encoders (`train-source`). Needs a CUDA GPU; writes benchmarks/results/adapt_gpu.json.

    .venv/bin/python benchmarks/adapt_gpu.py [--per-class 40] [--epochs 4]

Random-initialised weights are enough for throughput. The data are synthetic scenes at
224 px (one sensor domain: 6 task classes as the target, 4 TI classes as pairs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from socket_edge.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "adapt_gpu.json"


def run(*argv: object) -> None:
    if cli([str(a) for a in argv]) != 0:
        raise SystemExit(f"failed: socket-edge {' '.join(map(str, argv))}")


def images_per_second(history: list[dict], images_per_epoch: int) -> float:
    """Steady-state throughput from per-epoch elapsed times (the first epoch is warm-up)."""
    epochs = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(history, history[1:])][1:]
    return round(images_per_epoch / (sum(epochs) / len(epochs)), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_gpu")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one")
    scenes = args.work / "scenes"
    if not scenes.exists():
        run("synth", scenes, "--per-class", args.per_class, "--size", 224, "--domains", "kv2", "-q")
    sources, supervised = [], []
    for seed in (0, 1):
        src = args.work / f"r50_{seed}.pt"
        started = time.time()
        run("train-source", "--data", scenes / "kv2" / "rgb", "--arch", "resnet50", "--weights", "none",
            "--img-size", 224, "--epochs", args.epochs, "--out", src, "--seed", seed, "--device", "cuda", "-q")
        n_train = torch.load(src, weights_only=True)["provenance"]["metrics"]["train_n"]
        supervised.append(round(n_train * args.epochs / (time.time() - started), 1))
        sources.append(src)
    result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "img_size": 224,
              "sources": "2 × resnet50", "precision": "bf16 autocast, channels_last",
              "supervised_images_per_s_incl_validation": supervised}
    n_target = 6 * args.per_class
    for method in ("shot", "socket"):
        out = args.work / f"{method}.pt"
        # --bn-distance kl: with these barely trained sources the paper's L_d was inf in the first epoch
        # (2026-11-26, H200); the KL costs the same per step, so the throughput is the method's
        extra = ["--ti-source", scenes / "kv2" / "ti" / "rgb", "--ti-target", scenes / "kv2" / "ti" / "depth",
                 "--bn-distance", "kl"]
        run("adapt", *sum([["--source", s] for s in sources], []), "--target", scenes / "kv2" / "depth",
            "--modality", "depth", "--method", method, "--epochs", args.epochs, "--out", out, "--device", "cuda",
            "--overwrite", "-q", *(extra if method == "socket" else []))
        history = torch.load(out, weights_only=True)["provenance"]["metrics"]["epochs"]
        result[f"{method}_target_images_per_s"] = images_per_second(history, n_target)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
