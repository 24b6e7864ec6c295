"""Capture on its own thread into a bounded queue.

Live sources drop the oldest queued frame when inference lags (the newest frame is what
matters); files and recordings block instead, so that no frame is lost. A source that raises
SourceLost is closed and reopened with exponential backoff (base `backoff_s`, capped at
`max_backoff_s`), and capture goes on; each loss is one warning line."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable

from socket_edge.errors import SocketEdgeError
from socket_edge.runtime.sources import Source, SourceLost
from socket_edge.terminal import printable

END = object()  # queued once when the source is exhausted


class Capture:
    """Reads `source` on a daemon thread. `get()` returns (Frame, enqueue time), END, or raises the
    error that stopped the source. The source must be opened before `start()` so that a wrong path or
    a missing camera fails at once, in the caller."""

    def __init__(self, source: Source, *, live: bool, queue_size: int | None = None, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, warn: Callable[[str], None] | None = None,
                 ready: threading.Event | None = None) -> None:
        self.source, self.live = source, live
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size or (2 if live else 8))
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.warn = warn or (lambda line: print(printable(line), file=sys.stderr, flush=True))
        self.dropped = 0
        self.reopens = 0
        self.stopping = threading.Event()
        self.ready = ready  # set after each item queued: several captures can wake one consumer
        self.thread = threading.Thread(target=self._run, name="socket-edge-capture", daemon=True)

    def start(self) -> "Capture":
        self.thread.start()
        return self

    def get(self, timeout: float | None = None):
        """The next (Frame, enqueue time) or END; re-raises a capture error."""
        item = self.queue.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def poll(self):
        """The next (Frame, enqueue time) or END without waiting; None when nothing is queued."""
        try:
            item = self.queue.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self.stopping.set()
        while True:  # make room so that a blocked put returns
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout=5)
        self.source.close()

    def _put(self, item) -> None:
        self._enqueue(item)
        if self.ready is not None:
            self.ready.set()

    def _enqueue(self, item) -> None:
        if self.live:
            while True:
                try:
                    self.queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self.queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    frame = self.source.read()
                except SourceLost as exc:
                    self._reopen(exc)
                    continue
                if frame is None:
                    self._put(END)
                    return
                self._put((frame, time.perf_counter()))
        except SocketEdgeError as exc:
            self._put(exc)
        except Exception as exc:  # a driver error must reach the main thread, not die with this one
            self._put(SocketEdgeError(f"capture failed: {type(exc).__name__}: {exc}"))

    def _reopen(self, lost: SourceLost) -> None:
        """Close and reopen the source with exponential backoff until it works or capture stops."""
        delay = self.backoff_s
        self.warn(f"socket-edge: warning: {lost}; reopening")
        while not self.stopping.is_set():
            self.source.close()
            if self.stopping.wait(delay):
                return
            try:
                self.source.open()
                self.reopens += 1
                self.warn("socket-edge: warning: source reopened; continuing")
                return
            except SocketEdgeError as exc:
                delay = min(delay * 2, self.max_backoff_s)
                self.warn(f"socket-edge: warning: reopening failed ({exc}); next try in {delay:g} s")

