"""`run` over several sources with one batched model: a capture thread per source
(capture.Capture: drops and reopens per stream as for one source), and per tick ONE model call
over the newest ready frame of each stream, stacked on the graph's batch axis; the probabilities
go back to their streams (own smoothing, own outputs, own health).

A tick takes what is ready: once one stream has a frame, the others get `gather_s` to deliver
theirs, so a slow or stalled stream never holds up the rest. A stream that ends (its file or
recording is over) or fails (it cannot be opened, or its source raises) is reported and the others
go on; the run ends when every stream has ended, at Ctrl-C, or when an output window closes.
A model that cannot take all streams in one call (a graph exported with a fixed batch, an
engine's profile maximum) runs them in chunks of what it takes, each chunk's frames output as soon
as its call returns, and one note says so at the start. A single --source runs in pipeline.run, unchanged."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from socket_edge.backends import Model
from socket_edge.data.preprocess import prepare
from socket_edge.errors import ContractError, SocketEdgeError
from socket_edge.interrupt import POLL_S, CtrlC
from socket_edge.runtime.capture import END, Capture
from socket_edge.runtime.outputs import close_all, record
from socket_edge.runtime.pipeline import STAGES, Smoother, Summary, percentile_ms
from socket_edge.runtime.sources import Frame, Source, open_source
from socket_edge.runtime.uri import SourceSpec
from socket_edge.terminal import printable

GATHER_S = 0.01  # how long a tick waits for the other streams once one has a frame


@dataclass
class Stream:
    """One source of a multi-stream run: its capture, smoother, outputs and health (`summary`)."""

    index: int
    spec: SourceSpec
    source: Source
    outputs: list
    smoother: Smoother
    summary: Summary
    capture: Capture | None = None
    done: bool = False

    def deliver(self, frame: Frame, probs: np.ndarray, latency_s: float, names, top_k: int, started: float) -> None:
        """Smooth a frame's probabilities, write its record to this stream's outputs, count it."""
        rec = record(frame.number, frame.timestamp, names, self.smoother(probs), 1000.0 * latency_s, top_k,
                     stream=self.index, header=frame.header)
        for out in self.outputs:
            out.write(rec, frame.image)
        self.summary.frames += 1
        self.summary.last_frame = frame.number
        self.summary.seconds = time.perf_counter() - started

@dataclass
class MultiSummary:
    """Per-stream health (`streams`) and the totals of a multi-stream run: frames, seconds from the
    start to the last output, the frames of each model call, per-tick stage times, and each
    frame's latency from its capture queue to its probabilities."""

    streams: list[Summary]
    backend: str = ""
    frames: int = 0
    seconds: float = 0.0
    batches: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    interrupted: bool = False
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    error: SocketEdgeError | None = None  # what ended the whole run early (an output that cannot be written)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def problems(self) -> list[str]:
        """One line per stream that failed or whose recording did not deliver all its frames."""
        return [f"stream {i} ({s.source}) failed: {s.failed}" if s.failed else f"stream {i}: {s.lost}"
                for i, s in enumerate(self.streams) if s.failed or s.lost]

    def to_dict(self) -> dict:
        return {
            "frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
            "interrupted": self.interrupted, "backend": self.backend, "calls": len(self.batches),
            "mean_batch": round(float(np.mean(self.batches)), 3) if self.batches else 0.0,
            "latency_ms": {"p50": percentile_ms(self.latencies, 50), "p95": percentile_ms(self.latencies, 95)},
            "stages_ms": {s: {"mean": round(1000.0 * float(np.mean(v)), 3) if v else 0.0, "p50": percentile_ms(v, 50),
                              "p95": percentile_ms(v, 95)} for s, v in self.stages.items()},
            "streams": [s.to_dict() for s in self.streams],
        }

    def describe(self) -> str:
        rows = []
        for i, s in enumerate(self.streams):
            row = (f"  stream {i}  {s.frames} frames ({s.fps:.1f} FPS) from {s.source}; dropped {s.dropped}, "
                   f"reopened {s.reopens}")
            rows.append(row + (f"; failed: {s.failed}" if s.failed else f"; lost: {s.lost}" if s.lost else ""))
        mean = float(np.mean(self.batches)) if self.batches else 0.0
        head = (f"{self.frames} frames in {self.seconds:.2f} s ({self.fps:.1f} FPS) from {len(self.streams)} streams "
                f"on {self.backend}; {len(self.batches)} model calls, mean batch {mean:.2f}"
                + (" (interrupted)" if self.interrupted else ""))
        stages = [f"  {s:<13} p50 {percentile_ms(v, 50):8.2f} ms   p95 {percentile_ms(v, 95):8.2f} ms   (per tick)"
                  for s, v in self.stages.items()]
        latency = (f"  {'latency':<13} p50 {percentile_ms(self.latencies, 50):8.2f} ms   "
                   f"p95 {percentile_ms(self.latencies, 95):8.2f} ms   (per frame)")
        return "\n".join([head, *rows, *stages, latency])


def batch_limit(model: Model) -> tuple[int | None, str]:
    """The most frames one call of `model` takes and why; (None, "") when any number goes."""
    fixed = getattr(model, "fixed_batch", None)  # backends.onnx: a batch fixed in the graph
    if fixed:
        return fixed, (f"{model.name} has a fixed batch of {fixed} in its graph; export it without --batch for a "
                       "dynamic batch axis")
    largest = getattr(model, "max_batch", None)  # backends.engine: the optimisation profile's maximum
    if largest:
        return largest, (f"{model.name} takes at most {largest} frames per call (its profile); export it with "
                         "--dynamic-batch 1:N:N, N at least the number of streams")
    return None, ""


def _open_streams(model: Model, specs: list[SourceSpec], outputs: list[list], smooth: float | None,
                  sources: list[Source] | None, warn: Callable[[str], None]) -> list[Stream]:
    """Every stream made and opened. A source the model was not made for is refused (ContractError,
    the whole run); one that cannot be opened is a failed stream, unless all fail: then the first error."""
    contract, backend = model.contract, f"{model.backend} ({model.detail})"
    streams: list[Stream] = []
    errors: list[SocketEdgeError] = []
    try:
        for index, spec in enumerate(specs):
            source = sources[index] if sources else open_source(spec, contract.modality)
            if source.modality is not None:  # RealSense, or named in the URI: refused before opening
                contract.check_modality(source.modality, what=f"source {spec.uri} ({source.modality})")
            stream = Stream(index, spec, source, outputs[index], Smoother(smooth),
                            Summary(backend=backend, source=spec.uri))
            streams.append(stream)
            try:
                source.open()
            except ContractError:
                raise
            except SocketEdgeError as exc:
                errors.append(exc)
                stream.summary.failed, stream.done = str(exc), True
                continue
            contract.check_modality(source.modality, what=f"source {spec.uri} ({source.modality})")
    except BaseException:
        for stream in streams:
            stream.source.close()
        raise
    if len(errors) == len(specs):
        raise errors[0]
    for stream in streams:
        if stream.summary.failed:
            warn(f"socket-edge: warning: stream {stream.index} ({stream.spec.uri}) failed: {stream.summary.failed}; "
                 "the other streams go on")
    return streams


def _gather(streams: list[Stream], ready: threading.Event, gather_s: float, warn: Callable[[str], None],
            ctrl_c: CtrlC) -> list:
    """(stream, frame, enqueue time) of each stream with a frame this tick; marks the streams that
    ended or failed as done. Returns [] only when every stream is done or Ctrl-C was pressed."""
    got: dict[int, tuple] = {}
    deadline = None
    while not ctrl_c.pressed:
        ready.clear()  # before polling: a frame queued after the poll sets it again
        for stream in streams:
            if stream.done or stream.index in got:
                continue
            try:
                item = stream.capture.poll()
            except SocketEdgeError as exc:
                _fail(stream, exc, warn)
                continue
            if item is END:
                stream.summary.recorded, stream.done = stream.source.recorded, True
            elif item is not None:
                got[stream.index] = (stream, *item)
        if all(stream.done or stream.index in got for stream in streams):
            break
        if got:
            deadline = deadline or time.perf_counter() + gather_s
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            ready.wait(left)
        else:
            ready.wait(POLL_S)
    return [] if ctrl_c.pressed else [got[i] for i in sorted(got)]


def _fail(stream: Stream, exc: SocketEdgeError, warn: Callable[[str], None]) -> None:
    """Stop one stream for `exc` (its source or one of its frames): it is reported, the others go on."""
    stream.summary.failed = str(exc)
    warn(f"socket-edge: warning: stream {stream.index} ({stream.spec.uri}) failed: {exc}; the other streams go on")
    _finish(stream)


def _prepared(batch: list, contract, warn: Callable[[str], None]) -> tuple[list, np.ndarray | None]:
    """(the batch's items whose frame prepares, their raw inputs stacked); a frame that cannot be
    prepared (a float TIFF, a frame of another size or bit depth) fails its own stream alone."""
    kept, raws = [], []
    for item in batch:
        stream, frame, _ = item
        try:
            raws.append(prepare(frame.image, contract, source_unit=frame.unit,
                                name=f"{stream.spec.uri} frame {frame.number}"))
        except SocketEdgeError as exc:
            _fail(stream, exc, warn)
            continue
        kept.append(item)
    return kept, (np.stack(raws) if raws else None)


def _finish(stream: Stream) -> None:
    """Stop a stream's capture (or close its unstarted source) and keep its drops and reopens."""
    stream.done = True
    if stream.capture is None:
        stream.source.close()
        return
    stream.capture.stop()
    stream.summary.dropped, stream.summary.reopens = stream.capture.dropped, stream.capture.reopens


def run_streams(model: Model, specs: list[SourceSpec], outputs: list[list], *, smooth: float | None = None,
                max_frames: int | None = None, top_k: int = 3, backoff_s: float = 0.5, max_batch: int | None = None,
                gather_s: float = GATHER_S, warn: Callable[[str], None] | None = None,
                sources: list[Source] | None = None) -> MultiSummary:
    """Run every stream until all have ended (or `max_frames` each), an output closes or Ctrl-C.

    outputs[i]: stream i's outputs (one object may serve several streams: it is closed once).
    max_batch: the most frames per model call (1: one frame at a time, the benchmark's baseline; each
    chunk's frames are output when its call returns);
    `sources` replaces the specs' Sources (tests)."""
    warn = warn or (lambda line: print(printable(line), file=sys.stderr, flush=True))
    streams = _open_streams(model, specs, outputs, smooth, sources, warn)
    limit, reason = batch_limit(model)
    if limit is not None and limit < len(specs) and max_batch is None:
        warn(f"socket-edge: note: {reason}; the {len(specs)} streams run in {math.ceil(len(specs) / limit)} model "
             "calls per tick, not one")
    step = min((v for v in (max_batch, limit) if v), default=None)  # frames per model call; None: all at once
    ready = threading.Event()
    for stream in streams:
        if not stream.done:
            stream.capture = Capture(stream.source, live=stream.spec.live, backoff_s=backoff_s, warn=warn,
                                     ready=ready).start()
    summary = MultiSummary([s.summary for s in streams], backend=f"{model.backend} ({model.detail})")
    contract, names, stages = model.contract, model.contract.class_names, summary.stages
    started = time.perf_counter()
    error: SocketEdgeError | None = None
    with CtrlC() as ctrl_c:
        try:
            while not ctrl_c.pressed:
                t0 = time.perf_counter()
                batch = _gather(streams, ready, gather_s, warn, ctrl_c)
                if not batch:
                    break
                t1 = time.perf_counter()
                batch, raw = _prepared(batch, contract, warn)
                t2 = time.perf_counter()
                if not batch:
                    continue
                inference = output = 0.0
                for start in range(0, len(batch), step or len(batch)):  # one call, or chunks the model can take
                    chunk = batch[start:start + (step or len(batch))]
                    t3 = time.perf_counter()
                    probs = model.predict(raw[start:start + len(chunk)])
                    t4 = time.perf_counter()
                    for (stream, frame, queued), p in zip(chunk, probs):
                        stream.deliver(frame, p, t4 - queued, names, top_k, started)
                        summary.latencies.append(t4 - queued)
                        if max_frames is not None and stream.summary.frames >= max_frames:
                            _finish(stream)
                    summary.batches.append(len(chunk))
                    inference, output = inference + t4 - t3, output + time.perf_counter() - t4
                for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, inference, output)):
                    stages[stage].append(seconds)
                summary.frames += len(batch)
                summary.seconds = time.perf_counter() - started
                if any(getattr(out, "closed", False) for stream in streams for out in stream.outputs):
                    break
        except KeyboardInterrupt:
            summary.interrupted = True
        except SocketEdgeError as exc:  # an output failed (a full disk): the run ends, its summary is still printed
            error = exc
        finally:
            summary.interrupted = summary.interrupted or ctrl_c.pressed
            for stream in streams:
                _finish(stream)
                stream.summary.interrupted = summary.interrupted
            try:
                close_all({id(out): out for stream in streams for out in stream.outputs}.values())
            except SocketEdgeError as exc:
                error = error or exc
    summary.error = error
    return summary
