"""What a live view costs the inference loop, for docs/live-view.md.

    python benchmarks/live_view_cost.py            socket-edge's view (runtime.view): the handoff per
                                                   frame, and `run`'s FPS on a looping folder of 640×480
                                                   depth PNGs without a view, with a view nobody watches,
                                                   and with a page polling it as a browser does
    python benchmarks/live_view_cost.py --rerun    the same frame logged to Rerun (rerun-sdk, in a venv of
                                                   its own: it needs numpy>=2 and pyarrow) with its web
                                                   viewer served from the wheel: time per frame in the
                                                   inference thread

Prints one Markdown table row per case. Not part of the test run."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

FRAME_SHAPE = (480, 640)


def depth_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.integers(500, 4500, FRAME_SHAPE, dtype=np.uint16)
    frame[rng.random(FRAME_SHAPE) < 0.03] = 0
    return frame


def per_call_us(write, frame: np.ndarray, record: dict, calls: int) -> tuple[float, float]:
    """Median and 99th percentile of one call, in µs, over `calls` calls timed one by one."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        write(record, frame)
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times), 1e6 * float(np.percentile(times, 99))


def poll(url: str, stop: threading.Event) -> None:
    """What the page does: state.json and the newest picture, ten times a second."""
    while not stop.wait(0.1):
        for path in ("state.json", "frame/0.jpg"):
            try:
                urllib.request.urlopen(url + path, timeout=5).read()
            except OSError:
                pass


def socket_edge_view(frames: int, rounds: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import cv2
    from test_live_view import mean_depth_onnx

    from socket_edge.backends import open_model
    from socket_edge.runtime import pipeline
    from socket_edge.runtime.uri import parse_source
    from socket_edge.runtime.view import LiveView

    record = {"frame": 0, "label": "bars", "score": 0.9, "top_k": [{"label": "bars", "score": 0.9}], "latency_ms": 1.0}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for i in range(8):
            cv2.imwrite(str(folder / f"{i:03d}.png"), depth_frame(i))
        model = open_model(mean_depth_onnx(Path(tmp) / "mean.onnx", 2500.0), threads=1)
        spec = parse_source(f"{folder}?loop=1")
        cases = ("no view", "view, nobody watching", "view, a page polling 10×/s")
        fps: dict[str, list[float]] = {case: [] for case in cases}
        output: dict[str, list[float]] = {case: [] for case in cases}
        handoff: dict[str, list[float]] = {case: [] for case in cases}
        for r in range(rounds):  # interleaved and rotated, so that the machine's load hits every case alike
            for case in cases[r % 3:] + cases[:r % 3]:
                outputs, stop = [], threading.Event()
                view = LiveView(("127.0.0.1", 0), [spec.uri]) if case != "no view" else None
                if view:
                    view.start("mean.onnx", "depth", model.contract.class_names)
                    outputs = [view.stream(0)]
                    if "polling" in case:
                        threading.Thread(target=poll, args=(view.url, stop), daemon=True).start()
                        time.sleep(0.5)
                    handoff[case].append(per_call_us(view.stream(0).write, depth_frame(), record, 100000))
                pipeline.run(model, spec, outputs, max_frames=50)  # warm-up
                summary = pipeline.run(model, spec, outputs, max_frames=frames)
                fps[case].append(summary.fps)
                output[case].append(summary.to_dict()["stages_ms"]["output"]["p95"])
                stop.set()
                if view:
                    view.close()
        print(f"{rounds} rounds of {frames} frames; median over rounds")
        print("| case | FPS of `run` (each round) | output stage p95 (ms) | handoff per frame median / p99 (µs) |")
        print("|---|---|---|---|")
        for case in cases:
            rounds_fps = " ".join(f"{v:.0f}" for v in fps[case])
            cost = (f"{statistics.median(m for m, _ in handoff[case]):.2f} / "
                    f"{statistics.median(p for _, p in handoff[case]):.2f}") if handoff[case] else "–"
            print(f"| {case} | {statistics.median(fps[case]):.0f} ({rounds_fps}) | "
                  f"{statistics.median(output[case]):.3f} | {cost} |")


def rerun_view(frames: int) -> None:
    import rerun as rr

    rr.init("socket-edge-cost")
    server = rr.serve_grpc()
    rr.serve_web_viewer(open_browser=False, connect_to=server)
    frame = depth_frame()

    def log(record: dict, image: np.ndarray) -> None:
        rr.set_time("frame", sequence=record["frame"])
        rr.log("stream0/depth", rr.DepthImage(image, meter=1000.0, colormap="turbo"))
        rr.log("stream0/score", rr.Scalars(record["score"]))
        rr.log("stream0/label", rr.TextLog(record["label"]))

    record = {"frame": 0, "label": "bars", "score": 0.9}
    per_call_us(log, frame, record, 50)  # warm-up
    median, p99 = per_call_us(log, frame, record, frames)
    print(f"| Rerun {rr.__version__}: DepthImage + Scalars + TextLog | {median:.1f} / {p99:.1f} µs per frame |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rerun", action="store_true", help="measure Rerun instead (rerun-sdk installed)")
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the socket-edge cases")
    args = parser.parse_args()
    if args.rerun:
        rerun_view(args.frames)
    else:
        socket_edge_view(args.frames, args.rounds)


if __name__ == "__main__":
    main()
