"""Multi-stream `run` benchmark (issue 15 §5): 1, 2 and 4 streams of 640×480 depth recordings
through one two-member MobileNetV2 model, ONNX Runtime CPU with 2 intra-op threads: total FPS of
the batched pipeline (one model call per tick over the ready streams) against the same pipeline
one frame per model call, and each frame's latency p95 (capture queue → probabilities).

    .venv/bin/python benchmarks/multistream.py                 # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/multistream.py --frames 60 --repeats 1 --size 128

Steps: a depth ensemble of two MobileNetV2 members (random weights: speed does not depend on them)
is saved and exported to ONNX with a dynamic batch axis; the same 640×480 Z16 frames (depth scale
0.001) are recorded uncompressed into 4 RealSense files through a pyrealsense2 software device
(uncompressed: the closer stand-in for a live camera, see docs/benchmarks/run.md); a child process
(no torch in it) runs `runtime.multistream.run_streams` over the first 1, 2 and 4 recordings, batched
and with max_batch=1, `--repeats` times interleaved, and the medians are reported.
speedup = batched total FPS / one-at-a-time total FPS. The goal: ≥ 1.5× at 4 streams.
Writes benchmarks/results/multistream.json and docs/benchmarks/multistream.md; the load average
and the CPU other processes used during the measurement are recorded with them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from run_fps import load_note, measured_worker  # noqa: E402  (the same load accounting as the run benchmark)

RESULTS = ROOT / "benchmarks" / "results" / "multistream.json"
REPORT = ROOT / "docs" / "benchmarks" / "multistream.md"
CLASSES = ("bedroom", "office", "kitchen", "bathroom", "living_room", "classroom")
STREAMS = (1, 2, 4)
MODES = ("batched", "one_at_a_time")
PACINGS = ("saturated", "live")


def make_model(folder: Path, size: int) -> Path:
    """A two-member MobileNetV2 depth ensemble exported to ONNX (dynamic batch axis: the default)."""
    import torch

    from socket_edge.contract import InputContract
    from socket_edge.export import exporter
    from socket_edge.models import artifact
    from socket_edge.models.ensemble import Ensemble
    from socket_edge.models.zoo import ModelConfig, build

    torch.manual_seed(0)
    members = [build(ModelConfig("mobilenet_v2", len(CLASSES))) for _ in range(2)]
    model = Ensemble(InputContract.for_modality("depth", CLASSES, size), members, [0.5, 0.5])
    pt = artifact.save(model.eval(), folder / "depth2.pt", "source", {})
    exporter.export(pt)
    return folder / "depth2.onnx"


def make_recordings(folder: Path, frames: int) -> list[Path]:
    """Four uncompressed RealSense recordings of 640×480 depth (a turning slanted plane, noise, holes)."""
    import numpy as np

    from socket_edge.runtime.recording import recording_suffix, write_recording

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    depth = []
    for i in range(frames):
        plane = 1500 + 800 * np.sin(i / 20) * (xx - 320) / 320 + 400 * (yy - 240) / 240
        frame = (plane + rng.normal(0, 10, plane.shape)).clip(0, 65535).astype(np.uint16)
        frame[rng.random(frame.shape) < 0.02] = 0
        depth.append(frame)
    return [write_recording(folder / f"cam{i}{recording_suffix()}", depth, depth_scale=0.001, compress=False)
            for i in range(max(STREAMS))]


def decode(recording: str) -> list:
    """Every frame of a recording, decoded."""
    from socket_edge.runtime.sources import open_source
    from socket_edge.runtime.uri import parse_source

    reader = open_source(parse_source(recording), "depth")
    reader.open()
    frames = list(iter(reader.read, None))
    reader.close()
    return frames


def paced_cameras(decoded: list, count: int, fps: int) -> tuple[list, list]:
    """`count` live-camera stand-ins (specs, sources): decoded frames handed out at `fps` on each
    camera's own clock (phases spread over one frame period), looping; live for the pipeline (a
    bounded queue of 2, the oldest frame dropped when inference lags), as a real camera is."""
    import time

    from socket_edge.runtime.sources import Frame, Source
    from socket_edge.runtime.uri import SourceSpec

    class PacedCamera(Source):
        modality = "depth"

        def __init__(self, spec: SourceSpec, phase: float) -> None:
            super().__init__(spec)
            self.count, self.start = 0, None
            self.phase = phase

        def read(self) -> Frame:
            self.start = self.start or time.perf_counter() + self.phase
            wait = self.start + self.count / fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            image = decoded[self.count % len(decoded)]
            self.count += 1
            return Frame(image.image, time.time(), self.count - 1, image.unit, "depth")

    specs = [SourceSpec(uri=f"camera {i} ({fps} FPS)", kind="camera", target=str(i)) for i in range(count)]
    return specs, [PacedCamera(spec, i / (fps * count)) for i, spec in enumerate(specs)]


def pure_fps(model, raw, rounds: int) -> dict[str, float]:
    """Frames per second of inference alone per batch size (batches of copies of one prepared frame):
    one call of each size per round, interleaved, so that other work on the machine hits every size
    alike; the median time per frame over the rounds."""
    import time

    import numpy as np

    stacks = {n: np.repeat(raw[None], n, axis=0) for n in STREAMS}
    per_frame: dict[int, list[float]] = {n: [] for n in STREAMS}
    for n, stack in stacks.items():
        model.predict(stack)  # warm-up
    for _ in range(rounds):
        for n, stack in stacks.items():
            started = time.perf_counter()
            model.predict(stack)
            per_frame[n].append((time.perf_counter() - started) / n)
    return {str(n): round(1.0 / statistics.median(times), 2) for n, times in per_frame.items()}


def worker(model: str, recordings: list[str], frames: int, threads: int, repeats: int, fps: int) -> dict:
    """Every (pacing, streams, mode) `repeats` times, interleaved so that a drifting load spreads over
    all: the recordings played as fast as they go (saturated), then paced cameras at `fps` (live)."""
    from socket_edge.backends import open_model
    from socket_edge.data.preprocess import prepare
    from socket_edge.runtime.multistream import run_streams
    from socket_edge.runtime.uri import parse_source

    loaded = open_model(model, providers="cpu", threads=threads)
    specs, decoded = [parse_source(path) for path in recordings], decode(recordings[0])
    raw = prepare(decoded[0].image, loaded.contract, source_unit=decoded[0].unit)
    runs: dict[str, list] = {}
    for _ in range(repeats):
        for n, fps in pure_fps(loaded, raw, frames // 4).items():
            runs.setdefault(f"pure/{n}", []).append(fps)
        for pacing in PACINGS:
            for n in STREAMS:
                for mode in MODES:
                    chosen, sources = (specs[:n], None) if pacing == "saturated" else paced_cameras(decoded, n, fps)
                    summary = run_streams(loaded, chosen, [[] for _ in range(n)], max_frames=frames, sources=sources,
                                          max_batch=1 if mode == "one_at_a_time" else None)
                    result = summary.to_dict()
                    for stream in result["streams"]:  # the file's name, not its temporary folder
                        stream["source"] = Path(stream["source"]).name
                    runs.setdefault(f"{pacing}/{n}/{mode}", []).append(result)
    return {"runs": runs, "threads": threads, "detail": loaded.detail}


def medians(runs: dict[str, list]) -> dict:
    """Per pacing and streams count: the median total FPS, frame latency p50/p95, mean batch and
    drops of each mode, and the speedup of batching."""
    table: dict = {}
    for pacing in PACINGS:
        for n in STREAMS:
            row: dict = {}
            for mode in MODES:
                rs = runs[f"{pacing}/{n}/{mode}"]
                row[mode] = {"fps": statistics.median(r["fps"] for r in rs),
                             "latency_p50_ms": statistics.median(r["latency_ms"]["p50"] for r in rs),
                             "latency_p95_ms": statistics.median(r["latency_ms"]["p95"] for r in rs),
                             "mean_batch": statistics.median(r["mean_batch"] for r in rs),
                             "dropped": statistics.median(sum(s["dropped"] for s in r["streams"]) for r in rs),
                             "fps_each": [r["fps"] for r in rs]}
            row["speedup"] = round(row["batched"]["fps"] / row["one_at_a_time"]["fps"], 3)
            row["best_speedup"] = round(max(row["batched"]["fps_each"]) / max(row["one_at_a_time"]["fps_each"]), 3)
            table.setdefault(pacing, {})[str(n)] = row
    pure = {str(n): statistics.median(runs[f"pure/{n}"]) for n in STREAMS}
    best = {str(n): max(runs[f"pure/{n}"]) for n in STREAMS}
    table["pure"] = {n: {"fps": fps, "fps_each": runs[f"pure/{n}"], "speedup": round(fps / pure["1"], 3),
                         "best_speedup": round(best[n] / best["1"], 3)} for n, fps in pure.items()}
    return table


def rows(table: dict) -> str:
    """The markdown rows of one pacing's table."""
    lines = []
    for n in STREAMS:
        row = table[str(n)]
        b, s = row["batched"], row["one_at_a_time"]
        lines.append(f"| {n} | {s['fps']:.1f} | {b['fps']:.1f} | **{row['speedup']:.2f}×** "
                     f"({row['best_speedup']:.2f}×) | {b['mean_batch']:.2f} | {s['latency_p95_ms']:.1f} | "
                     f"{b['latency_p95_ms']:.1f} |")
    return "\n".join(lines)


HEADER = ("| streams | one at a time, FPS | batched, FPS | speedup (best repeats) | mean batch "
          "| p95 latency one at a time, ms | p95 latency batched, ms |\n|---:|---:|---:|---:|---:|---:|---:|")


def report(result: dict) -> str:
    table, top = result["table"], str(max(STREAMS))
    four = table["saturated"][top]["speedup"]
    verdict = "met" if four >= 1.5 else "NOT met"
    return f"""# `socket-edge run` with several sources: one batched model

Written by `benchmarks/multistream.py` ({result['date']}). {result['machine']}, onnxruntime {result['onnxruntime']},
pyrealsense2 {result['pyrealsense2']}.
{load_note(result)}

Model: an ensemble of two MobileNetV2 members (depth, {result['size']} px), exported to ONNX with a dynamic
batch axis, ONNX Runtime CPU, {result['threads']} intra-op threads. *Batched*: one model call per tick over the
newest frame of every stream (`socket-edge run --source A --source B …`); *one at a time*: the same
pipeline with one frame per model call, each frame output as soon as its call returns. Latency: from
the frame entering its capture queue to its probabilities. Each setting ran {result['repeats']} times,
interleaved; medians, and in brackets the speedup of the best repeat of each mode (the least disturbed
by other work on the machine).

**Saturated**: {result['frames']} frames of 640×480 Z16 depth (depth scale 0.001) in each of 1, 2 or 4
uncompressed RealSense recordings, played back as fast as they go (no frame dropped; a file's queue
holds 8 frames, so its latency is mostly waiting in that queue):

{HEADER}
{rows(table['saturated'])}

**Speedup of batching at {max(STREAMS)} streams: {four:.2f}×** (goal ≥ 1.5×: {verdict}).

The ceiling, inference alone (`predict` on a batch of N copies of one prepared frame, no pipeline):
{pure(table['pure'])}. The pipeline's speedup cannot exceed that of the model call itself.

**Live**: each stream a camera stand-in delivering the recording's decoded frames at {result['fps']} FPS on its own
clock (queue of 2, the oldest frame dropped when inference lags, as for a live camera), {result['frames']} frames
processed per stream; FPS is what the pipeline kept up with, out of {result['fps']} per stream offered:

{HEADER}
{rows(table['live'])}

{notes(result)}

Not measured here: TensorRT or CUDA (no GPU on this machine; an engine's profile maximum bounds the
batch, `--dynamic-batch 1:N:N`), real cameras, a Jetson.
"""


def pure(table: dict) -> str:
    """Inference-alone FPS per batch size, in words."""
    return "; ".join(f"batch {n}: {row['fps']:.1f} FPS, {row['speedup']:.2f}× batch 1 (best repeats: "
                     f"{max(row['fps_each']):.1f} FPS, {row['best_speedup']:.2f}×)" for n, row in table.items())


def notes(result: dict) -> str:
    """The spread of the repeats, and what the tables say."""
    t, top = result["table"]["saturated"], str(max(STREAMS))
    spread = "; ".join(f"{n} streams: batched {', '.join(f'{v:.1f}' for v in t[str(n)]['batched']['fps_each'])}, "
                       f"one at a time {', '.join(f'{v:.1f}' for v in t[str(n)]['one_at_a_time']['fps_each'])}"
                       for n in STREAMS)
    ceiling = result["table"]["pure"][top]
    each = [v for n in STREAMS for mode in MODES for v in t[str(n)][mode]["fps_each"]]
    shared = (f" The repeats differ up to {max(each) / min(each):.1f}× in speed: other work shared the cores during "
              "some of them, so the best repeats (the least disturbed) are the fairer comparison."
              if max(each) > 2 * min(each) else "")
    return (f"Total FPS of each saturated repeat: {spread}.{shared} Inference alone is {ceiling['speedup']:.2f}× "
            f"as fast per frame at batch {top} as at batch 1 ({ceiling['best_speedup']:.2f}× between the best "
            f"repeats): at {result['size']} px this model's call is compute-bound on the CPU, and "
            "both cores are busy at batch 1 already, so a larger batch has no idle hardware to fill and little "
            "per-call overhead to share. Batching pays where the call is not compute-bound per frame: a GPU "
            "(TensorRT, ONNX Runtime's CUDA provider), not measured here, or a small input. Whatever the pipeline "
            "adds (one capture thread per stream, preprocessing, the gather) is the same in both modes; a frame's "
            "latency in a batch includes the other frames' share of the call.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="frames per stream")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fps", type=int, default=30, help="frames per second of each live camera stand-in")
    parser.add_argument("--worker", nargs=1 + max(STREAMS), metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, *paths = args.worker
        print(json.dumps(worker(model, paths, args.frames, args.threads, args.repeats, args.fps)))
        return
    from socket_edge import atomic

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model, recordings = make_model(folder, args.size), make_recordings(folder, args.frames)
        measured, header = measured_worker(
            [__file__, "--worker", str(model), *map(str, recordings), "--frames", str(args.frames),
             "--threads", str(args.threads), "--repeats", str(args.repeats), "--fps", str(args.fps)], args.threads)
    table = medians(measured["runs"])
    result = {
        **header, "size": args.size, "frames": args.frames, "repeats": args.repeats,
        "fps": args.fps,
        "threads": measured["threads"], "providers": measured["detail"],
        "speedup_at_4": table["saturated"][str(max(STREAMS))]["speedup"], "table": table, "runs": measured["runs"],
    }
    atomic.write_text(RESULTS, json.dumps(result, indent=2) + "\n")
    atomic.write_text(REPORT, report(result))
    print(report(result))


if __name__ == "__main__":
    main()
