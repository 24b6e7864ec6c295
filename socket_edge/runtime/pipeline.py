"""The streaming loop of `socket-edge run`: capture thread → host-side preprocessing (the one
implementation, data.preprocess.prepare) → inference → optional EMA of probabilities → outputs,
with the time of each stage recorded for the summary."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from socket_edge.backends import Model
from socket_edge.data.preprocess import prepare
from socket_edge.interrupt import POLL_S, CtrlC
from socket_edge.runtime.capture import END, Capture
from socket_edge.runtime.outputs import close_all, record
from socket_edge.runtime.sources import open_source
from socket_edge.runtime.uri import SourceSpec

STAGES = ("capture_wait", "preprocess", "inference", "output")


def percentile_ms(values: list[float], q: float) -> float:
    return round(1000.0 * float(np.percentile(values, q)), 3) if values else 0.0


@dataclass
class Summary:
    """Frames, seconds from the start to the last frame's output, FPS and per-stage p50/p95 of one run."""

    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    reopens: int = 0
    interrupted: bool = False
    backend: str = ""
    source: str = ""
    recorded: int | None = None  # frames the source file holds, where it says so
    last_frame: int | None = None  # the number of the last frame read
    failed: str | None = None  # why a stream of several stopped before its end (runtime.multistream)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
            "dropped": self.dropped, "reopens": self.reopens, "interrupted": self.interrupted,
            "backend": self.backend, "source": self.source, "recorded": self.recorded, "failed": self.failed,
            "stages_ms": {s: {"mean": round(1000.0 * float(np.mean(v)), 3) if v else 0.0, "p50": percentile_ms(v, 50),
                              "p95": percentile_ms(v, 95)} for s, v in self.stages.items()},
        }

    @property
    def lost(self) -> str | None:
        """What a damaged recording did not deliver, in words; None when nothing was lost."""
        if self.recorded is None or self.frames >= self.recorded or self.interrupted:
            return None
        where = "from its first frame" if self.last_frame is None else f"after frame {self.last_frame}"
        return (f"read {self.frames} of {self.recorded} frames of {self.source}; the recording is damaged {where} "
                "(the rest cannot be decoded)")

    def describe(self) -> str:
        head = (f"{self.frames} frames in {self.seconds:.2f} s ({self.fps:.1f} FPS) from {self.source} on "
                f"{self.backend}; dropped {self.dropped}, reopened {self.reopens}"
                + (" (interrupted)" if self.interrupted else ""))
        rows = [f"  {s:<13} p50 {percentile_ms(v, 50):8.2f} ms   p95 {percentile_ms(v, 95):8.2f} ms"
                for s, v in self.stages.items()]
        return "\n".join([head, *rows])


class Smoother:
    """Exponential moving average of probabilities: s_t = α·p_t + (1 − α)·s_{t−1}; α = 1 is no smoothing."""

    def __init__(self, alpha: float | None) -> None:
        self.alpha = alpha
        self.state: np.ndarray | None = None

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        if self.alpha is None:
            return probs
        self.state = probs if self.state is None else self.alpha * probs + (1.0 - self.alpha) * self.state
        return self.state


def run(model: Model, spec: SourceSpec, outputs: list, *, smooth: float | None = None,
        max_frames: int | None = None, top_k: int = 3, backoff_s: float = 0.5,
        warn: Callable[[str], None] | None = None, source=None) -> Summary:
    """Run the pipeline until the source ends, `max_frames`, an output closes (window) or Ctrl-C.

    The source's modality is checked against the model's contract before any inference; depth
    frames are converted from the source's unit (device depth scale or depth_scale) by `prepare`.
    `warn` receives warning lines (default: stderr); `source` replaces the spec's Source (tests)."""
    contract = model.contract
    source = source or open_source(spec, contract.modality)
    if source.modality is not None:  # RealSense, or a modality named in the URI: refuse before opening
        contract.check_modality(source.modality, what=f"source {spec.uri} ({source.modality})")
    source.open()
    contract.check_modality(source.modality, what=f"source {spec.uri} ({source.modality})")
    capture = Capture(source, live=spec.live, backoff_s=backoff_s, warn=warn).start()
    summary = Summary(backend=f"{model.backend} ({model.detail})", source=spec.uri)
    smoother, names, stages = Smoother(smooth), contract.class_names, summary.stages
    started = time.perf_counter()
    with CtrlC() as ctrl_c:
        try:
            while not ctrl_c.pressed and (max_frames is None or summary.frames < max_frames):
                t0 = time.perf_counter()
                item = _next(capture, ctrl_c)
                if item is None:  # Ctrl-C while waiting
                    break
                if item is END:
                    summary.recorded = source.recorded  # the source ended by itself: did it deliver everything?
                    break
                frame, queued = item
                t1 = time.perf_counter()
                raw = prepare(frame.image, contract, source_unit=frame.unit, name=f"{spec.uri} frame {frame.number}")
                t2 = time.perf_counter()
                probs = smoother(model.predict(raw[None])[0])
                t3 = time.perf_counter()
                rec = record(frame.number, frame.timestamp, names, probs, 1000.0 * (t3 - queued), top_k,
                             header=frame.header)
                for out in outputs:
                    out.write(rec, frame.image)
                t4 = time.perf_counter()
                for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    stages[stage].append(seconds)
                summary.frames += 1
                summary.last_frame = frame.number
                summary.seconds = t4 - started  # FPS up to the last frame's output, not the end-of-stream check
                if any(getattr(out, "closed", False) for out in outputs):
                    break
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            summary.interrupted = summary.interrupted or ctrl_c.pressed
            capture.stop()
            summary.dropped, summary.reopens = capture.dropped, capture.reopens
            close_all(outputs)
    return summary


def _next(capture: Capture, ctrl_c: CtrlC):
    """The capture's next item, or None once Ctrl-C is pressed while waiting for it."""
    while not ctrl_c.pressed:
        try:
            return capture.get(timeout=POLL_S)
        except queue.Empty:
            continue
    return None
