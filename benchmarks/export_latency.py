"""Export benchmark (issue 4): latency of the PyTorch ensemble (eager) against the exported graph in
ONNX Runtime (CPU), FLOPs and bytes of the folded graph and the floor they imply on this CPU,
file sizes fp32/fp16, parity, the effect of --prune-zeta, and eval of .pt vs .onnx on rgbnir212.

    .venv/bin/python benchmarks/export_latency.py            # about 3-5 minutes on 2 cores

Latency: each backend runs in its own process (the ONNX Runtime one never imports torch), with
2 threads, batch 1 and 8, warm-up then the median of N runs, on two-MobileNetV2 and
two-ResNet-18 ensembles (random weights: latency does not depend on them) at 128 px, the
input size of the rgbnir212 benchmark. Writes benchmarks/results/export.json and
docs/benchmarks/export.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results_io import cpu_model
from socket_edge import atomic

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "export.json"
REPORT = ROOT / "docs" / "benchmarks" / "export.md"
RGBNIR = ROOT.parent / "shared" / "data" / "rgbnir212"
TR = ("country", "field", "forest", "indoor", "mountain", "oldbuilding")
ENSEMBLES = {"2× MobileNetV2": ("mobilenet_v2", "mobilenet_v2"), "2× ResNet-18": ("resnet18", "resnet18")}
SIZE = 128
BATCHES = (1, 8)


# ---------------------------------------------------------------- workers (one process per backend)

def worker(backend: str, model: str, threads: int, runs: int, warmup: int) -> dict:
    """Median latency (ms) per batch size of one backend; printed as JSON by the child process."""
    import numpy as np

    from socket_edge.export.parity import generated_frames

    if backend == "torch":
        import torch

        from socket_edge.models import artifact

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        ensemble, _ = artifact.load(model)
        contract = ensemble.contract

        def run(x: np.ndarray) -> None:
            with torch.inference_mode():
                ensemble(torch.from_numpy(x))
    else:
        from socket_edge.backends.onnx import OnnxModel

        onnx_model = OnnxModel(model, providers="cpu", threads=threads)
        contract = onnx_model.contract

        def run(x: np.ndarray) -> None:
            onnx_model.predict(x)
    out: dict = {"torch_imported": "torch" in sys.modules}
    for batch in BATCHES:
        x = generated_frames(contract, batch, seed=batch)
        n = max(5, runs // batch)
        for _ in range(warmup):
            run(x)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            run(x)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        out[str(batch)] = {"median_ms": round(statistics.median(times), 2), "p10_ms": round(times[len(times) // 10], 2),
                           "p90_ms": round(times[(9 * len(times)) // 10], 2), "runs": n}
    return out


def peak_worker(threads: int) -> dict:
    """What this CPU really does: fp32 matmul GFLOP/s with `threads` threads, and copy bandwidth."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    gflops = 2 * 1024 ** 3 * reps / (time.perf_counter() - start) / 1e9
    src = np.ones(64 * 1024 * 1024 // 4, np.float32)  # 64 MB
    dst = np.empty_like(src)
    np.copyto(dst, src)
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        np.copyto(dst, src)
    bandwidth = 2 * src.nbytes * reps / (time.perf_counter() - start) / 1e9
    return {"matmul_gflops": round(gflops, 1), "copy_gb_s": round(bandwidth, 1)}


def child(*argv: str) -> dict:
    result = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"worker {' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- graph cost

def graph_cost(path: Path) -> dict:
    """FLOPs (multiply-add = 2) and bytes of one batch-1 inference, counted over the ONNX graph:
    Conv and Gemm/MatMul exactly, every other node as one operation per output element; bytes =
    weights read once + every activation written once and read once."""
    import numpy as np
    import onnx

    proto = onnx.load(str(path))
    for value in (*proto.graph.input, *proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 1
    proto = onnx.shape_inference.infer_shapes(proto)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*proto.graph.value_info, *proto.graph.input, *proto.graph.output)}
    weights = {t.name: list(t.dims) for t in proto.graph.initializer}
    weight_bytes = sum(int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
                       for t in proto.graph.initializer)
    flops = {"conv": 0, "gemm": 0, "other": 0}
    activations = 0
    for node in proto.graph.node:
        out = int(np.prod(shapes.get(node.output[0], [0])))
        activations += out
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            flops["conv"] += 2 * out * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in weights:
            w = weights[node.input[1]]
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            flops["gemm"] += 2 * out * (w[1] if trans_b else w[0])
        else:
            flops["other"] += out
    return {"flops": sum(flops.values()), "flops_by_kind": flops, "weight_bytes": weight_bytes,
            "activation_bytes": activations * 4, "bytes": weight_bytes + 2 * activations * 4}


def theoretical_peak() -> dict:
    """Cores × clock × fp32 FLOPs per cycle from /proc/cpuinfo (AVX2+FMA: 2 FMA units × 8 lanes × 2)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    mhz = next((float(line.split(":", 1)[1]) for line in info.splitlines() if line.startswith("cpu MHz")), 0.0)
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= set(flags) else 8
    cores = os.cpu_count() or 1
    return {"cpu": cpu_model(info), "cores": cores, "mhz": mhz, "flops_per_cycle": per_cycle,
            "gflops": round(cores * mhz / 1000 * per_cycle, 1)}


# ---------------------------------------------------------------- the benchmark

def cli(*argv: object) -> None:
    from socket_edge.cli import main

    code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"failed ({code}): socket-edge {' '.join(map(str, argv))}")


def random_ensemble(archs: tuple[str, ...], path: Path, classes: int = len(TR)) -> Path:
    import torch

    from socket_edge.contract import InputContract
    from socket_edge.models import artifact
    from socket_edge.models.ensemble import Ensemble
    from socket_edge.models.zoo import ModelConfig, build

    torch.manual_seed(0)
    contract = InputContract.for_modality("nir", TR[:classes], SIZE)
    members = [build(ModelConfig(arch, classes)) for arch in archs]
    return artifact.save(Ensemble(contract, members, [0.6, 0.4]).eval(), path, "ensemble",
                         artifact.provenance(stage="benchmark"))


def latency_suite(work: Path, threads: int, runs: int, warmup: int) -> dict:
    from socket_edge.export.exporter import export

    out = {}
    for name, archs in ENSEMBLES.items():
        pt = random_ensemble(archs, work / f"{archs[0]}_pair.pt")
        fp32 = export(pt, out=work / f"{archs[0]}_pair.onnx")
        fp16 = export(pt, out=work / f"{archs[0]}_pair_fp16.onnx", fp16=True)
        row = {
            "members": list(archs), "size": SIZE,
            "file_bytes": {"pt": pt.stat().st_size, "onnx_fp32": fp32["size_bytes"], "onnx_fp16": fp16["size_bytes"]},
            "export_seconds": fp32["seconds"], "parity": fp32["parity"] + fp16["parity"][1:],
            "batchnorm_folded": fp32["batchnorm_folded"], "batchnorm_left": fp32["batchnorm_left"],
            "cost": graph_cost(Path(fp32["file"])),
        }
        common = ["--threads", threads, "--runs", runs, "--warmup", warmup]
        row["torch_eager"] = child("--worker", "torch", "--model", str(pt), *map(str, common))
        row["onnxruntime"] = child("--worker", "onnx", "--model", fp32["file"], *map(str, common))
        row["onnxruntime_fp16"] = child("--worker", "onnx", "--model", fp16["file"], *map(str, common))
        out[name] = row
        print(f"{name}: eager {row['torch_eager']['1']['median_ms']} ms, onnxruntime "
              f"{row['onnxruntime']['1']['median_ms']} ms at batch 1", flush=True)
    return out


def rgbnir_suite(work: Path, data: Path, model: Path | None) -> dict:
    """eval of the .pt and its .onnx on rgbnir212 NIR (the 6 task classes), and --prune-zeta."""
    import torch

    from socket_edge.evaluation import evaluate
    from socket_edge.export.exporter import export
    from socket_edge.models import artifact
    from socket_edge.models.ensemble import Ensemble

    nir = work / "rgbnir_nir_tr"
    if not nir.exists():  # the 6 task classes only: eval and --check-data refuse unknown classes
        for name in TR:
            shutil.copytree(data / "nir" / name, nir / name)
    if model is None:
        # a stand-in for an adapted ensemble: two NIR classifiers (ImageNet MobileNetV2, trained with
        # labels, one longer than the other) mixed with unequal ζ, so that pruning has something to drop
        common = ["--data", nir, "--modality", "nir", "--arch", "mobilenet_v2", "--img-size", SIZE, "-q"]
        for seed, epochs in ((0, 3), (1, 1)):
            path = work / f"nir_source_{seed}.pt"
            if not path.exists():
                cli("train-source", *common, "--weights", "imagenet", "--epochs", epochs, "--seed", seed, "--out", path)
        (a, _), (b, _) = artifact.load(work / "nir_source_0.pt"), artifact.load(work / "nir_source_1.pt")
        model = artifact.save(Ensemble(a.contract, [a.members[0], b.members[0]], torch.tensor([0.7, 0.3])),
                              work / "nir_pair.pt", "ensemble", artifact.provenance(stage="benchmark stand-in"))
    onnx_path = work / "nir_pair.onnx"
    summary = export(model, out=onnx_path, check_data=nir)
    pruned = export(model, out=work / "nir_pair_pruned.onnx", check_data=nir, prune_zeta=0.35)
    pt_eval = evaluate(model, nir, progress=False, device="cpu")
    onnx_eval = evaluate(onnx_path, nir, progress=False, device="cpu")
    return {
        "model": str(model), "data": f"{data.name}/nir ({', '.join(TR)})", "n": pt_eval["n"],
        "accuracy_pt": pt_eval["accuracy"], "accuracy_onnx": onnx_eval["accuracy"],
        "difference": round(abs(pt_eval["accuracy"] - onnx_eval["accuracy"]), 2),
        "same_confusion": pt_eval["confusion"] == onnx_eval["confusion"], "parity": summary["parity"],
        "prune": pruned["prune"], "file_bytes": {"onnx": summary["size_bytes"], "onnx_pruned": pruned["size_bytes"]},
    }


def report(results: dict) -> str:
    peak, theory = results["peak"], results["theoretical_peak"]
    lines = [
        "# Export benchmark", "",
        f"Run {results['date']} on {theory['cpu']} ({theory['cores']} cores, {theory['mhz']:.0f} MHz), "
        f"{results['threads']} threads, torch {results['versions']['torch']}, onnxruntime "
        f"{results['versions']['onnxruntime']}, by `benchmarks/export_latency.py`. "
        f"Load average (1 min) {results['load_before']:.2f} before the run and {results['load_after']:.2f} after it. "
        "**Latencies may be noisy**: the machine is shared with other CPU-heavy jobs (the adaptation benchmark); "
        "a load well above the run's own 2 threads means they ran at the same time. PyTorch's OpenMP threads "
        "lose more to such oversubscription than ONNX Runtime's, which would favour ONNX Runtime in the ratios.", "",
        f"## Latency ({SIZE} px, nir input, median of N runs after warm-up, each backend in its own process)", "",
        "| ensemble | batch | PyTorch eager (ms) | ONNX Runtime fp32 (ms) | ORT / eager | ONNX Runtime fp16 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results["latency"].items():
        for batch in map(str, BATCHES):
            eager, ort, half = (row[k][batch]["median_ms"] for k in ("torch_eager", "onnxruntime", "onnxruntime_fp16"))
            lines.append(f"| {name} | {batch} | {eager:.1f} | {ort:.1f} | {ort / eager:.2f}× | {half:.1f} |")
    clean = not any(r["onnxruntime"]["torch_imported"] for r in results["latency"].values())
    lines += ["", "Goal: ONNX Runtime ≤ 0.7× eager at batch 1. The ONNX Runtime worker "
              f"{'never imported' if clean else 'IMPORTED'} torch. "
              "ONNX Runtime's CPU provider has few fp16 kernels and inserts casts, so fp16 files are for GPUs "
              "(CUDA/TensorRT), not for CPU speed.", "",
              "## Cost of the folded graph and the floor it implies", "",
              f"Peak of this CPU: {theory['gflops']} GFLOP/s fp32 ({theory['cores']} cores × "
              f"{theory['mhz'] / 1000:.2f} GHz × "
              f"{theory['flops_per_cycle']} FLOP/cycle). Measured in the same run: "
              f"{peak['matmul_gflops']} GFLOP/s for a 1024² matmul in torch ({results['threads']} threads), "
              f"{peak['copy_gb_s']} GB/s for a 64 MB memory copy.", "",
              "| ensemble | GFLOPs / frame | weights (MB) | activations (MB) | compute floor (ms) | "
              "weight reads (ms) | "
              "all traffic (ms) | ORT batch 1 (ms) | ORT batch 8, per frame (ms) | achieved GFLOP/s at batch 8 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["latency"].items():
        cost = row["cost"]
        gflop = cost["flops"] / 1e9
        per_frame = row["onnxruntime"]["8"]["median_ms"] / 8
        ms = {key: cost[key] / 1e9 / peak["copy_gb_s"] * 1000 for key in ("weight_bytes", "bytes")}
        lines.append(
            f"| {name} | {gflop:.2f} | {cost['weight_bytes'] / 1e6:.1f} | {cost['activation_bytes'] / 1e6:.1f} | "
            f"{gflop / theory['gflops'] * 1000:.1f} | {ms['weight_bytes']:.1f} | {ms['bytes']:.1f} | "
            f"{row['onnxruntime']['1']['median_ms']:.1f} | {per_frame:.1f} | {gflop / per_frame * 1000:.1f} |")
    lines += ["", "FLOPs count a multiply-add as 2 (Conv and Gemm exactly; other nodes one operation per output "
              "element). A frame cannot beat the compute floor (the FLOPs at the CPU's peak). Weight reads: the "
              "weights at the measured copy bandwidth, a batch-1 floor too when they do not stay in cache between "
              "frames (at batch 8 "
              "eight frames share them). All traffic: weights once plus every activation written and read once, an "
              "upper estimate, since a 128 px frame's activations largely stay in cache (batch-8 MobileNetV2 runs "
              "below it). Depthwise convolutions (MobileNetV2) reach a smaller share of the peak than ResNet-18's "
              "dense ones."]
    best = max(row["cost"]["flops"] / 1e9 / (row["onnxruntime"]["8"]["median_ms"] / 8) * 1000
               for row in results["latency"].values())
    if best > theory["gflops"]:
        lines[-1] += (f" ONNX Runtime reached {best:.0f} GFLOP/s, above the peak computed from the clock that "
                      "/proc/cpuinfo reports: the cores run faster than that (boost; a VM shows the nominal clock), "
                      "so the real compute floor is lower than the table's by that unknown factor.")
    lines += ["",
              "## Files and parity", "",
              "| ensemble | .pt (MB) | .onnx fp32 (MB) | .onnx fp16 (MB) | max abs Δp fp32 | max abs Δp fp16 | "
              "BatchNorm folded / left |",
              "|---|---|---|---|---|---|---|"]
    for name, row in results["latency"].items():
        size = row["file_bytes"]
        parity = {p["precision"]: p["max_abs_diff"] for p in row["parity"]}
        mb = {key: size[key] / 1e6 for key in ("pt", "onnx_fp32", "onnx_fp16")}
        lines.append(f"| {name} | {mb['pt']:.1f} | {mb['onnx_fp32']:.1f} | {mb['onnx_fp16']:.1f} | "
                     f"{parity['fp32']:.1e} | {parity['fp16']:.1e} | "
                     f"{row['batchnorm_folded']} / {row['batchnorm_left']} |")
    lines += ["", "Parity: PyTorch fp32 against ONNX Runtime CPU on 32 generated NIR frames (goal ≤ 1e-4 for fp32)."]
    rgbnir = results.get("rgbnir")
    if rgbnir:
        prune = rgbnir["prune"]
        dropped = ", ".join(f"{d['arch']} (ζ {d['zeta']:.2f})" for d in prune["dropped"])
        lines += ["", "## rgbnir212: eval of the .pt and of its .onnx, and --prune-zeta", "",
                  "Model: two ImageNet-MobileNetV2 NIR classifiers (3 and 1 epochs, trained with labels as a "
                  "stand-in for "
                  f"an adapted ensemble), ζ = 0.7/0.3, {SIZE} px; data: {rgbnir['data']}, n = {rgbnir['n']}.", "",
                  "| | accuracy (%) |", "|---|---|",
                  f"| eval of the .pt (PyTorch) | {rgbnir['accuracy_pt']:.2f} |",
                  f"| eval of the .onnx (ONNX Runtime) | {rgbnir['accuracy_onnx']:.2f} |", "",
                  f"Difference {rgbnir['difference']:.2f} points (goal ≤ 0.5), identical confusion matrix: "
                  f"{rgbnir['same_confusion']}; parity on these images: max |Δp| "
                  f"{rgbnir['parity'][0]['max_abs_diff']:.1e}.", "",
                  f"`--prune-zeta {prune['threshold']}` dropped {dropped}: "
                  f"accuracy {prune['accuracy_before']:.2f}% → {prune['accuracy_after']:.2f}%, argmax agreement "
                  "with the "
                  f"full ensemble {prune['agreement']['argmax_agreement']:.1f}%, file "
                  f"{rgbnir['file_bytes']['onnx'] / 1e6:.1f} → {rgbnir['file_bytes']['onnx_pruned'] / 1e6:.1f} MB "
                  "(and half the compute: the pruned graph is one member)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("torch", "onnx", "peak"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=40, help="timed runs at batch 1 (batch 8: runs/8, at least 5)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "export-bench")
    parser.add_argument("--rgbnir", type=Path, default=RGBNIR, help="rgbnir212 root (skipped when missing)")
    parser.add_argument("--rgbnir-model", type=Path, help="an adapted NIR ensemble (.pt) instead of the stand-in")
    parser.add_argument("--report", action="store_true", help="only rewrite the report from the JSON results")
    args = parser.parse_args()
    if args.report:
        atomic.write_text(REPORT, report(json.loads(RESULTS.read_text())))
        return
    if args.worker == "peak":
        print(json.dumps(peak_worker(args.threads)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.threads, args.runs, args.warmup)))
        return

    import onnxruntime
    import torch

    started = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {
        "load_before": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d"), "threads": args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "theoretical_peak": theoretical_peak(), "peak": child("--worker", "peak", "--threads", str(args.threads)),
        "latency": latency_suite(args.work, args.threads, args.runs, args.warmup),
    }
    if args.rgbnir.is_dir():
        results["rgbnir"] = rgbnir_suite(args.work, args.rgbnir, args.rgbnir_model)
    results["seconds"] = round(time.time() - started, 1)
    results["load_after"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(REPORT, report(results))
    print(f"wrote {RESULTS.relative_to(ROOT)} and {REPORT.relative_to(ROOT)} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
