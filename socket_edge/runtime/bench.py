"""`socket-edge bench`: pure inference latency and throughput per available backend, and, with a
source, the full pipeline's FPS and its overhead over pure inference on the same backend; with
several sources, the batched multi-stream pipeline's total FPS against the same pipeline one frame
per model call."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from socket_edge.backends import Model, backend_for, onnx, open_model
from socket_edge.data.preprocess import prepare
from socket_edge.errors import DataError, MissingDependencyError, require
from socket_edge.runtime import pipeline
from socket_edge.runtime.multistream import run_streams
from socket_edge.runtime.sources import open_source
from socket_edge.runtime.uri import SourceSpec


def candidates(path: Path) -> list[str | None]:
    """ONNX Runtime providers to try for a .onnx (each accelerator alone, then CPU); one entry otherwise."""
    if backend_for(path) is not onnx:
        return [None]
    available = require("onnxruntime", "cpu").get_available_providers()
    return [alias for alias in ("tensorrt", "cuda") if onnx.PROVIDER_ALIASES[alias] in available] + ["cpu"]


def sample_frame(model: Model, spec: SourceSpec | None) -> np.ndarray:
    """One prepared raw frame: the source's first frame, or mid-range values of the contract's shape."""
    contract = model.contract
    if spec is None:
        return np.full(contract.input_shape, 1000.0 if contract.modality == "depth" else 128.0, np.float32)
    source = open_source(spec, contract.modality)
    source.open()
    try:
        frame = source.read()
    finally:
        source.close()
    if frame is None:
        raise DataError(f"source {spec.uri} delivered no frame to measure with; give a source that holds frames")
    return prepare(frame.image, contract, source_unit=frame.unit)


def time_inference(model: Model, raw: np.ndarray, frames: int, warmup: int = 5) -> dict:
    """Latency p50/p95 (ms) and throughput (FPS) of batch-1 inference."""
    batch = raw[None]
    for _ in range(warmup):
        model.predict(batch)
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        model.predict(batch)
        times.append(time.perf_counter() - t0)
    return {"backend": f"{model.backend} ({model.detail})", "frames": frames,
            "p50_ms": pipeline.percentile_ms(times, 50), "p95_ms": pipeline.percentile_ms(times, 95),
            "fps": round(frames / sum(times), 2)}


def bench(model: str | Path, spec: SourceSpec | list[SourceSpec] | None = None, *, frames: int = 100,
          threads: int | None = 2, spinning: bool = True, providers: str | None = None, device: str = "auto") -> dict:
    """Inference per backend; with `spec`, the pipeline's FPS over up to `frames` frames and its
    overhead = 1 − pipeline FPS / pure inference FPS (same backend and session options: threads,
    spinning; pure inference is timed before and after the pipeline and averaged, so that a
    drifting machine load cancels). With several specs, `streams`: the batched pipeline over up to
    `frames` frames of each, then the same one frame per call, and the speedup of the first."""
    specs = [spec] if isinstance(spec, SourceSpec) else list(spec or [])
    if len(specs) > 1:
        return bench_streams(model, specs, frames=frames, threads=threads, spinning=spinning, providers=providers,
                             device=device)
    spec = specs[0] if specs else None
    path = Path(model)
    tried = [providers] if providers else candidates(path)
    results, first, missing = [], None, []
    for choice in tried:
        try:
            model = open_model(path, providers=choice, threads=threads, spinning=spinning, device=device)
        except MissingDependencyError as exc:
            results.append({"backend": choice, "skipped": str(exc)})
            missing.append(exc)
            continue
        raw = sample_frame(model, spec)
        results.append(time_inference(model, raw, frames))
        first = first or (model, results[-1])
    if first is None:  # nothing to measure (an .engine without TensorRT): the line `run` gives
        raise missing[0]
    out = {"model": str(path), "threads": threads, "spinning": spinning, "inference": results}
    if spec is not None and first is not None:
        model, before = first
        summary = pipeline.run(model, spec, [], max_frames=frames)
        after = time_inference(model, sample_frame(model, spec), frames)  # brackets the run against drift
        pure_fps = (before["fps"] + after["fps"]) / 2
        out["pipeline"] = summary.to_dict()
        out["inference_after"] = after
        out["pure_fps"] = round(pure_fps, 2)
        out["overhead_pct"] = round(100.0 * (1.0 - summary.fps / pure_fps), 2) if pure_fps else None
    return out


def bench_streams(model: str | Path, specs: list[SourceSpec], *, frames: int, threads: int | None, spinning: bool,
                  providers: str | None, device: str) -> dict:
    """Several sources on the first available backend: batch-1 inference, then the multi-stream
    pipeline batched and one frame per call (`frames` frames of each stream, or fewer where a file
    ends), and speedup = batched total FPS / one-at-a-time total FPS."""
    path = Path(model)
    out = bench(path, None, frames=frames, threads=threads, spinning=spinning, providers=providers, device=device)
    tried = [providers] if providers else candidates(path)
    usable = [choice for choice, row in zip(tried, out["inference"]) if "skipped" not in row]
    if not usable:
        return out
    loaded = open_model(path, providers=usable[0], threads=threads, spinning=spinning, device=device)
    runs = {name: run_streams(loaded, specs, [[] for _ in specs], max_frames=frames, max_batch=limit)
            for name, limit in (("batched", None), ("one_at_a_time", 1))}
    batched, single = runs["batched"], runs["one_at_a_time"]
    problems = list(dict.fromkeys(batched.problems + single.problems))
    fair = single.fps and not problems  # a failed stream leaves fewer frames per tick: no speedup to report
    out["streams"] = {"sources": [s.uri for s in specs], **{name: run.to_dict() for name, run in runs.items()},
                      "speedup": round(batched.fps / single.fps, 3) if fair else None, "problems": problems}
    return out


def describe(result: dict) -> str:
    """Human-readable lines of a bench result."""
    spin = "spinning" if result.get("spinning") else "no spinning"
    lines = [f"{result['model']} ({result['threads']} threads, {spin})"]
    for row in result["inference"]:
        if "skipped" in row:
            lines.append(f"  {row['backend']:<28} skipped: {row['skipped']}")
        else:
            lines.append(f"  {row['backend']:<28} p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  "
                         f"{row['fps']:8.1f} FPS (pure inference, batch 1)")
    if "pipeline" in result:
        p = result["pipeline"]
        lines.append(f"  pipeline on {p['source']}: {p['frames']} frames, {p['fps']:.1f} FPS, overhead "
                     f"{result['overhead_pct']:.1f}% over pure inference ({result['pure_fps']:.1f} FPS, before and after)")
        for stage, v in p["stages_ms"].items():
            lines.append(f"    {stage:<13} mean {v['mean']:7.2f} ms  p50 {v['p50']:7.2f} ms  p95 {v['p95']:7.2f} ms")
    if "streams" in result:
        s = result["streams"]
        speedup = (f"{s['speedup']:.2f}×" if s["speedup"] is not None else
                   "n/a (a stream failed)" if s.get("problems") else "n/a (no frames)")
        lines.append(f"  {len(s['sources'])} streams, speedup of batching {speedup}")
        for name in ("batched", "one_at_a_time"):
            run = s[name]
            lines.append(f"    {name.replace('_', ' '):<14} {run['frames']} frames, {run['fps']:.1f} FPS in total, "
                         f"{run['calls']} model calls (mean batch {run['mean_batch']:.2f}), frame latency p50 "
                         f"{run['latency_ms']['p50']:.2f} ms p95 {run['latency_ms']['p95']:.2f} ms")
    return "\n".join(lines)
