"""The live view (`run --view [HOST:]PORT`): a web page showing each stream's frame (coloured as
outputs.visual draws it), label and score, a plot of the top scores, FPS and latency, served by the
standard library's ThreadingHTTPServer (docs/live-view.md says why no viewer library).

It is an output like --save, and it never slows inference: a stream's `write` (the inference
loop's only cost) keeps a reference to the newest record and frame, nothing else. The view's own
sampler thread reads those references at most RATE times a second, keeps the plot's history and
encodes a JPEG, the latter only while a page is polling; the HTTP threads serve what
the sampler made. Frames are dropped from the view, never from the model."""

from __future__ import annotations

import errno
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from socket_edge import jsontext
from socket_edge.errors import OutputError, UsageError
from socket_edge.runtime.outputs import visual
from socket_edge.runtime.view_page import PAGE

RATE = 15.0  # samples (and at most JPEGs) per second and stream
HISTORY_S = 20.0  # seconds of plot history kept for a page that opens late
WATCHED_S = 3.0  # JPEGs are encoded until this long after a page last asked for one
MAX_WIDTH = 960  # wider frames are shrunk before encoding
JPEG_QUALITY = 80


def parse_address(text: str) -> tuple[str, int]:
    """`PORT`, `:PORT`, `HOST:PORT` or `[IPv6]:PORT` → (host, port); the host is 127.0.0.1 unless named.
    Port 0 takes any free port (the URL printed at the start names it)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host = ""
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or int(port) > 65535 or (sep and not host and text != f":{port}"):
        raise UsageError(f"--view {text!r} is not [HOST:]PORT; give e.g. --view 8080 (this machine only) or "
                         "--view 0.0.0.0:8080 (every network interface)")
    return host or "127.0.0.1", int(port)


class StreamSlot:
    """What the inference loop hands one stream's view: the newest (record, frame) and a count.
    `write` is the whole cost per frame: two assignments, no copy (the frame is never changed after
    it is output)."""

    def __init__(self, index: int, source: str) -> None:
        self.index, self.source = index, source
        self.latest: tuple[dict, np.ndarray] | None = None
        self.count = 0
        self.ended = False

    def write(self, rec: dict, image: np.ndarray) -> None:
        self.latest = (rec, image)
        self.count += 1

    def close(self) -> None:
        self.ended = True


class StreamState:
    """The view's side of one stream, kept by the sampler thread: the sampled record, FPS and latency
    over the last second, the plot history and the newest JPEG."""

    def __init__(self, slot: StreamSlot) -> None:
        self.slot = slot
        self.record: dict | None = None
        self.sampled = 0  # slot.count at the last sample
        self.counts: deque[tuple[float, int]] = deque()  # (time, count) over the last second and more
        self.latencies: deque[tuple[float, float]] = deque()
        self.history: deque[list] = deque(maxlen=int(HISTORY_S * RATE))  # [sample number, time, top_k pairs]
        self.jpeg: bytes | None = None
        self.jpeg_count = -1  # slot.count of the frame in `jpeg`

    def sample(self, now: float, number: int, modality: str, encode: bool) -> None:
        latest, count = self.slot.latest, self.slot.count
        self.counts.append((now, count))
        while len(self.counts) > 2 and now - self.counts[1][0] >= 1.0:
            self.counts.popleft()
        if latest is None:
            return
        rec, image = latest
        if count != self.sampled:
            self.sampled, self.record = count, rec
            self.latencies.append((now, rec["latency_ms"]))
            self.history.append([number, round(now, 3), [[t["label"], t["score"]] for t in rec["top_k"]]])
        while self.latencies and now - self.latencies[0][0] > 1.0:
            self.latencies.popleft()
        if encode and self.jpeg_count != count:
            self.jpeg, self.jpeg_count = encode_jpeg(image, modality), count

    def fps(self) -> float:
        (t0, c0), (t1, c1) = self.counts[0], self.counts[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    def to_dict(self, since: int) -> dict:
        rec = self.record
        latency = float(np.mean([v for _, v in self.latencies])) if self.latencies else 0.0
        return {
            "source": self.slot.source, "ended": self.slot.ended, "frames": self.slot.count,
            "frame": rec["frame"] if rec else None, "label": rec["label"] if rec else None,
            "score": rec["score"] if rec else None, "top_k": rec["top_k"] if rec else [],
            "fps": round(self.fps(), 2) if self.counts else 0.0, "latency_ms": round(latency, 3),
            "jpeg": self.jpeg_count if self.jpeg is not None else -1,
            "history": [h for h in self.history if h[0] > since],
        }


def encode_jpeg(image: np.ndarray, modality: str) -> bytes:
    """A frame as the view shows it: coloured by outputs.visual, at most MAX_WIDTH wide, JPEG."""
    canvas = visual(image, modality)
    if canvas.shape[1] > MAX_WIDTH:
        height = round(canvas.shape[0] * MAX_WIDTH / canvas.shape[1])
        canvas = cv2.resize(canvas, (MAX_WIDTH, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OutputError("the live view cannot encode a frame as JPEG (OpenCV built without JPEG support?)")
    return data.tobytes()


class LiveView:
    """The page server and its sampler thread. Binds at construction (a port in use fails before the
    model is opened); `start(model, modality, class_names)` begins serving; `stream(i)` is stream i's
    output for run/run_streams; `close()` (or the with-block's end) stops both threads."""

    def __init__(self, address: tuple[str, int], sources: list[str], rate: float = RATE) -> None:
        self.address, self.rate = address, rate
        self.slots = [StreamSlot(i, uri) for i, uri in enumerate(sources)]
        self.states = [StreamState(slot) for slot in self.slots]
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watched_until = 0.0
        self.samples = 0
        self.problem: str | None = None  # why the sampler could not draw a frame, for the page
        self.model, self.modality, self.class_names = "", "rgb", []
        self.server = _bind(address, self)
        self.threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def start(self, model: str, modality: str, class_names) -> "LiveView":
        self.model, self.modality, self.class_names = model, modality, list(class_names)
        self.threads = [threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                         name="socket-edge-view-http", daemon=True),
                        threading.Thread(target=self._sample, name="socket-edge-view-sampler", daemon=True)]
        for thread in self.threads:
            thread.start()
        return self

    def stream(self, index: int) -> StreamSlot:
        return self.slots[index]

    def _sample(self) -> None:
        period = 1.0 / self.rate
        while not self.stopping.wait(period):
            try:
                self.sample_once()
            except (cv2.error, OutputError) as exc:  # the page says so; the run goes on
                self.problem = f"the view cannot draw a frame: {str(exc).strip().splitlines()[-1]}"

    def sample_once(self) -> None:
        """Sample every stream's newest frame (the sampler thread calls it RATE times a second)."""
        now = time.monotonic()
        encode = now < self.watched_until
        with self.lock:
            self.samples += 1
            for state in self.states:
                state.sample(now, self.samples, self.modality, encode)

    def state(self, since: int) -> dict:
        """What /state.json answers; `since`: the last plot sample the page has (a larger one, from a
        page that outlived an earlier run, gets the whole history). Asking keeps the sampler
        encoding pictures for WATCHED_S."""
        with self.lock:
            self.watched_until = time.monotonic() + WATCHED_S
            since = since if since <= self.samples else -1
            return {"model": self.model, "modality": self.modality, "classes": self.class_names,
                    "time": round(time.monotonic(), 3), "sample": self.samples, "problem": self.problem,
                    "streams": [state.to_dict(since) for state in self.states]}

    def jpeg(self, index: int) -> bytes | None:
        """The newest picture of stream `index` (None before the first, or for no such stream)."""
        with self.lock:
            if not 0 <= index < len(self.states):
                return None
            return self.states[index].jpeg

    def close(self) -> None:
        """Stop serving: the listening socket, then every open connection (a page that keeps polling
        over keep-alive would otherwise be served on), then the threads."""
        self.stopping.set()
        if self.threads:
            self.server.shutdown()
        self.server.server_close()
        self.server.hang_up()
        for thread in self.threads:
            thread.join(timeout=5)

    def __enter__(self) -> "LiveView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a browser that keeps a connection open never holds up the end of the run
    allow_reuse_address = True  # a restarted run gets its port back at once (a port in use is still refused)
    view: LiveView

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def handle_error(self, request, client_address) -> None:
        """A browser that went away mid-request (a closed tab, a killed browser: the connection reset while its
        next request was read) is no error of the run's: nothing is printed. Anything else as socketserver does."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def hang_up(self) -> None:
        """Close the read side of every open connection: its handler thread sees the end and returns."""
        with self.connections_lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RD)
                except OSError:  # the client has gone already
                    pass


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


def _bind(address: tuple[str, int], view: LiveView) -> _Server:
    host, port = address
    shown = f"{host}:{port}"
    cls = _IPv6Server if ":" in host else _Server
    try:
        server = cls((host, port), _Handler)
    except socket.gaierror:
        raise UsageError(f"--view {shown}: {host} is not a host name or address of this machine; use 127.0.0.1 "
                         "(this machine only) or 0.0.0.0 (every interface)") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OutputError(f"--view {shown}: port {port} is already in use on {host}; stop what uses it or pick "
                              "another port (--view 0 takes any free one)") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise OutputError(f"--view {shown}: no permission to listen on port {port}; ports below 1024 need "
                              "root: pick a port from 1024 up") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--view {shown}: {host} is not an address of this machine; use 127.0.0.1 or "
                             "0.0.0.0") from None
        raise OutputError(f"--view {shown}: cannot listen: {exc.strerror or exc}") from None
    server.view = view
    return server


class _Handler(BaseHTTPRequestHandler):
    """GET / (the page), /state.json?since=N, /frame/N.jpg; anything else 404. Read-only."""

    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: a polling page reuses its connection
    timeout = 10  # a client that stops reading (or goes quiet) frees its thread after this many seconds
    server_version = "socket-edge-view"

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        view = self.server.view
        if url.path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", PAGE.encode())
        elif url.path == "/state.json":
            since = parse_qs(url.query).get("since", ["-1"])[0]
            since = int(since) if since.lstrip("-").isdigit() else -1
            self._send(200, "application/json", jsontext.dumps(view.state(since)).encode())
        elif url.path.startswith("/frame/") and url.path.endswith(".jpg") and url.path[7:-4].isdigit():
            data = view.jpeg(int(url.path[7:-4]))
            if data is None:
                self._send(404, "text/plain", b"no picture yet\n")
            else:
                self._send(200, "image/jpeg", data)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, kind: str, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the browser went away: nothing to tell the run

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the standard library's name)
        """No line per request: the run's own output stays readable."""
