"""GPU throughput of adaptation (issue 3 item 4, issue 14 §5): images/s of plain supervised
training (`train-source`), `adapt --method shot` and `--method socket` for two ResNet-50 at
224 px and two MobileNetV2 at 128 px (bf16 autocast, channels_last), with the share of the time
the GPU is busy (nvidia-smi's utilization, sampled every 200 ms during each command). Goals:
SOCKET ≥ 45 % of plain training's images/s; the GPU busy ≥ 80 % (the input pipeline is not the
bottleneck). Needs a CUDA GPU; writes benchmarks/results/adapt_gpu.json.

    .venv/bin/python benchmarks/adapt_gpu.py [--per-class 40] [--epochs 4] [--workers N]

Random-initialised weights are enough for throughput. The data are synthetic scenes (one sensor
domain: 6 task classes as the target, 4 TI classes as pairs), rendered at each config's size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch

from socket_edge import atomic
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


class GpuBusy:
    """nvidia-smi sampling the GPU's utilization (% of time a kernel ran) while the block runs."""

    def __enter__(self) -> "GpuBusy":
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0", "-lms", "200"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        values = [int(v) for v in self.proc.communicate()[0].split() if v.isdigit()]
        busy = values[len(values) // 5:] or values  # the first fifth is start-up (imports, cache, first scan)
        self.percent = round(sum(busy) / len(busy), 1) if busy else None


def bench(work: Path, arch: str, size: int, per_class: int, epochs: int, workers: list[str]) -> dict:
    scenes = work / f"scenes{size}"
    if not scenes.exists():
        run("synth", scenes, "--per-class", per_class, "--size", size, "--domains", "kv2", "-q")
    sources, supervised, busy = [], [], {}
    for seed in (0, 1):
        src = work / f"{arch}_{size}_{seed}.pt"
        started = time.time()
        with GpuBusy() as gpu:
            run("train-source", "--data", scenes / "kv2" / "rgb", "--arch", arch, "--weights", "none",
                "--img-size", size, "--epochs", epochs, "--out", src, "--seed", seed, "--device", "cuda",
                "--overwrite", "-q", *workers)
        n_train = torch.load(src, weights_only=True)["provenance"]["metrics"]["train_n"]
        supervised.append(round(n_train * epochs / (time.time() - started), 1))
        busy[f"supervised_{seed}"] = gpu.percent
        sources.append(src)
    result = {"sources": f"2 × {arch}", "img_size": size, "precision": "bf16 autocast, channels_last",
              "supervised_images_per_s_incl_validation": supervised}
    n_target = 6 * per_class
    for method in ("shot", "socket"):
        out = work / f"{arch}_{size}_{method}.pt"
        # --bn-distance kl: with these barely trained sources the paper's L_d was inf in the first epoch
        # (2026-11-26, H200); the KL costs the same per step, so the throughput is the method's
        extra = ["--ti-source", scenes / "kv2" / "ti" / "rgb", "--ti-target", scenes / "kv2" / "ti" / "depth",
                 "--bn-distance", "kl"]
        with GpuBusy() as gpu:
            run("adapt", *sum([["--source", s] for s in sources], []), "--target", scenes / "kv2" / "depth",
                "--modality", "depth", "--method", method, "--epochs", epochs, "--out", out, "--device", "cuda",
                "--overwrite", "-q", *workers, *(extra if method == "socket" else []))
        history = torch.load(out, weights_only=True)["provenance"]["metrics"]["epochs"]
        result[f"{method}_target_images_per_s"] = images_per_second(history, n_target)
        busy[method] = gpu.percent
    result["gpu_busy_percent"] = busy
    result["socket_share_of_supervised"] = round(result["socket_target_images_per_s"] / max(supervised), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, help="--workers of the commands (default: theirs)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_gpu")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one")
    workers = [] if args.workers is None else ["--workers", str(args.workers)]
    result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "configs": [bench(args.work, arch, size, args.per_class, args.epochs, workers)
                          for arch, size in (("resnet50", 224), ("mobilenet_v2", 128))]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(OUT, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
