"""`run --view`: the live page in a real headless browser (Debian's Chromium), its frames and labels
updating while a looping image folder runs, and the rule that a view never slows the model: the
same frames and labels with and without it, a stalled browser included, and a handoff of
microseconds. The model is a real ONNX graph whose label follows the mean depth, so the conftest
depth patterns of two classes switch its label halfway through the folder."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import CLASSES, write_class_folders
from socket_edge.backends import open_model
from socket_edge.cli import main
from socket_edge.contract import InputContract
from socket_edge.modelfile import BatchSpec, ModelInfo
from socket_edge.runtime import pipeline
from socket_edge.runtime.uri import parse_source
from socket_edge.runtime.view import LiveView, parse_address

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def find_chromium() -> tuple[str | None, str]:
    """The chromium that runs here, or why none does (Ubuntu's chromium package is a snap stub)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        return None, "no chromium here: apt-get install chromium (Debian's) for the live view's browser test"
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{path} does not run ({exc}); install Debian's chromium"
    if version.returncode != 0 or "Chromium" not in version.stdout:
        return None, f"{path} --version fails ({version.stderr.strip()[-200:]}); install Debian's chromium"
    return path, ""


CHROMIUM, NO_CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)


def mean_depth_onnx(path: Path, threshold_mm: float) -> Path:
    """A socket-edge depth graph: softmax of 0.05·(threshold − mean depth) for bars, its negative for
    blob, 0 for ring; near scenes are bars, far ones blob."""
    contract = InputContract.for_modality("depth", CLASSES, 32)
    k = 0.05
    weights = np.array([[-k, k, 0.0]], np.float32)
    bias = np.array([k * threshold_mm, -k * threshold_mm, 0.0], np.float32)
    nodes = [helper.make_node("ReduceMean", ["raw"], ["mean"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Flatten", ["mean"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["wx"]),
             helper.make_node("Add", ["wx", "b"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"])]
    graph = helper.make_graph(
        nodes, "mean-depth",
        [helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT, ["N", *contract.input_shape])],
        [helper.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, ["N", len(CLASSES)])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, ModelInfo(contract, (1.0,), (), {}, "mean-depth", "fp32", BatchSpec()).to_props())
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def switching(tmp_path_factory) -> dict:
    """conftest depth frames, 6 bars then 6 blob (glob order), and the graph that tells them apart."""
    root = tmp_path_factory.mktemp("live-view")
    write_class_folders(root / "frames", "depth", per_class=6, size=64, classes=("bars", "blob"))
    means = {name: [float(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).mean()) for p in (root / "frames" / name).iterdir()]
             for name in ("bars", "blob")}
    assert max(means["bars"]) < min(means["blob"])  # the classes' depths do not overlap
    model = mean_depth_onnx(root / "mean.onnx", (max(means["bars"]) + min(means["blob"])) / 2)
    return {"model": model, "glob": str(root / "frames" / "*" / "*.png"), "blob": str(root / "frames" / "blob")}


def run_lines(args: list, capsys) -> tuple[int, list[dict], str]:
    code = main(["run", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_view_address():
    assert parse_address("8080") == parse_address(":8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    assert parse_address("robot.local:0") == ("robot.local", 0)


def test_view_mistakes_are_one_line(switching, capsys):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        code, lines, err = run_lines([switching["model"], "--source", switching["glob"], "--view", f"127.0.0.1:{port}"],
                                     capsys)
    finally:
        busy.close()
    assert (code, lines, err.count("\n")) == (1, [], 1), err
    assert f"port {port} is already in use" in err and "--view 0" in err and "Traceback" not in err
    code, _, err = run_lines([switching["model"], "--source", switching["glob"], "--view", "no.such.host.invalid:80"],
                             capsys)
    assert (code, err.count("\n")) == (2, 1) and "not a host name" in err, err
    with pytest.raises(SystemExit) as bad:
        main(["run", str(switching["model"]), "--source", switching["glob"], "--view", "localhost:http"])
    assert bad.value.code == 2 and "[HOST:]PORT" in capsys.readouterr().err


def test_the_view_changes_no_frame_and_no_label(switching, capsys):
    code, plain, _ = run_lines([switching["model"], "--source", switching["glob"]], capsys)
    assert code == 0 and [r["label"] for r in plain] == ["bars"] * 6 + ["blob"] * 6
    code, viewed, err = run_lines([switching["model"], "--source", switching["glob"], "--view", "127.0.0.1:0"], capsys)
    assert code == 0 and err.startswith("live view: http://127.0.0.1:") and "ssh -L" in err
    same = [(r["frame"], r["label"], r["score"]) for r in plain]
    assert [(r["frame"], r["label"], r["score"]) for r in viewed] == same


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read()


def send_quietly(connection: socket.socket, data: bytes) -> None:
    try:
        connection.sendall(data)
    except OSError:
        pass  # the test closed it


def test_a_stalled_browser_never_holds_up_the_model(switching):
    """A client that pipelines 20,000 picture requests on one keep-alive connection and never reads
    (the socket buffers fill and its server thread blocks in a write) and one that never finishes
    its request: the model still gets every frame, the view goes on sampling and encoding, and a
    stream's handoff costs microseconds."""
    model = open_model(switching["model"])
    spec = parse_source(switching["glob"] + "?loop=1")
    with LiveView(("127.0.0.1", 0), [spec.uri]) as view:
        view.start("mean.onnx", "depth", CLASSES)
        base = view.url
        port = view.server.server_address[1]
        state = json.loads(get(base + "state.json"))  # a page is watching: the sampler encodes pictures
        assert state["streams"][0]["frames"] == 0 and state["classes"] == list(CLASSES)
        assert pipeline.run(model, spec, [view.stream(0)], max_frames=24).frames == 24
        view.sample_once()  # a picture to ask for
        stalled = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=send_quietly, daemon=True,
                         args=(stalled, b"GET /frame/0.jpg HTTP/1.1\r\nHost: robot\r\n\r\n" * 20000)).start()
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"GET /sta")
        try:
            summary = pipeline.run(model, spec, [view.stream(0)], max_frames=600)
            get(base + "state.json")
            view.sample_once()
            state = json.loads(get(base + "state.json?since=-1"))["streams"][0]
            picture = cv2.imdecode(np.frombuffer(get(base + "frame/0.jpg"), np.uint8), cv2.IMREAD_COLOR)
            pending = stalled.recv(1 << 16, socket.MSG_PEEK)
        finally:
            stalled.close()
            half.close()
        assert pending.startswith(b"HTTP/1.1 200 OK") and b"image/jpeg" in pending  # it was being answered
        assert summary.frames == 600 and summary.dropped == 0
        assert state["frames"] == 624 and state["frame"] == 599 and state["label"] == "blob" and state["history"]
        assert state["jpeg"] >= 0 and picture.shape == (64, 64, 3)
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(base + "frame/9.jpg")
        assert missing.value.code == 404
        slot, frame = view.stream(0), np.zeros((480, 640), np.uint16)
        record = {"frame": 0, "label": "bars", "score": 1.0, "top_k": [], "latency_ms": 1.0}
        start = time.perf_counter()
        for _ in range(20000):
            slot.write(record, frame)
        per_frame = (time.perf_counter() - start) / 20000
    assert per_frame < 20e-6, f"{per_frame * 1e6:.2f} µs per frame"  # ~0.2 µs; generous for a loaded machine


class DevTools:
    """Debian's Chromium, headless, offline, a fresh profile, driven in real time over its DevTools pipe
    (--remote-debugging-pipe: JSON commands on its fd 3, answers and events on its fd 4, each ended by a NUL).
    The one-shot --dump-dom/--screenshot with a virtual-time budget hung here without end on this page (it polls
    every 100 ms), every time on some days: the budget never ran out. `call` waits for one answer at most
    `timeout` real seconds; a browser that does not answer skips the test, saying so."""

    def __init__(self, width: int = 1280, height: int = 1000) -> None:
        self.profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        to_read, self.to_chromium = os.pipe()
        self.from_chromium, from_write = os.pipe()

        def onto_3_and_4() -> None:  # in the child; a dup2 onto another number clears close-on-exec
            read, write = fcntl.fcntl(to_read, fcntl.F_DUPFD, 10), fcntl.fcntl(from_write, fcntl.F_DUPFD, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile.name}", f"--window-size={width},{height}",
             "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=onto_3_and_4, start_new_session=True)  # its helpers in its group
        os.close(to_read)
        os.close(from_write)
        self.buffer, self.last = b"", 0

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        """Send one DevTools command (to the page's `session`) and return its result."""
        self.last += 1
        message = {"id": self.last, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        os.write(self.to_chromium, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.last:
                    assert "error" not in answer, (method, answer["error"])
                    return answer["result"]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_chromium], [], [], left)[0]:
                pytest.skip(f"Chromium did not answer {method} in {timeout} s: the browser hangs on this machine; "
                            "the page was not checked")
            chunk = os.read(self.from_chromium, 1 << 20)
            assert chunk, f"Chromium ended before answering {method}"
            self.buffer += chunk

    def page(self, url: str, ready_js: str, wait_s: float = 20) -> tuple[str, bytes]:
        """Open `url`, wait (real time) until the expression `ready_js` is true or `wait_s` has passed, and
        return the page's DOM as it then stands and a PNG screenshot of it."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.navigate", {"url": url}, session)
        wait = (f"new Promise(done => {{ const end = Date.now() + {int(wait_s * 1000)}; (function check() {{ "
                f"if (({ready_js}) || Date.now() > end) done(document.documentElement.outerHTML); "
                "else setTimeout(check, 100); })(); })")
        dom = self.call("Runtime.evaluate", {"expression": wait, "awaitPromise": True, "returnByValue": True},
                        session, wait_s + 20)["result"]["value"]
        png = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"}, session)["data"])
        return dom, png

    def close(self) -> None:
        """End Chromium and its helper processes (renderer, GPU: its process group), then its profile."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        os.close(self.to_chromium)
        os.close(self.from_chromium)
        self.profile.cleanup()


# the page has drawn a picture in both cards and listed both of stream 0's labels
PAGE_READY = ("[0, 1].every(i => Number(document.getElementById(`s${i}-img`)?.dataset.shown) >= 1) && "
              "['bars at frame', 'blob at frame'].every(t => "
              "(document.getElementById('s0-changes')?.textContent || '').includes(t))")


def turbo_pixels(png: Path) -> int:
    """How many pixels of a screenshot have a colour of OpenCV's turbo map (a coloured depth frame)."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0].astype(int) >> 3
    known = np.zeros((32, 32, 32), bool)
    for d in np.ndindex(3, 3, 3):
        shifted = np.clip(lut + np.array(d) - 1, 0, 31)
        known[shifted[:, 0], shifted[:, 1], shifted[:, 2]] = True
    image = cv2.imread(str(png), cv2.IMREAD_COLOR).astype(int) >> 3
    return int(known[image[..., 0], image[..., 1], image[..., 2]].sum())


def interrupted(proc: subprocess.Popen, wait_s: float = 60) -> str:
    """Ctrl-C `proc` and return its stderr; a run that does not end in `wait_s` fails the test with every
    thread's stack (SIGABRT: the run's faulthandler writes them)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=wait_s)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        err = proc.communicate(timeout=30)[1]
        pytest.fail(f"the run did not end within {wait_s} s of Ctrl-C; its threads then:\n{err[-8000:]}")


@needs_chromium
def test_the_page_in_a_headless_browser(switching, tmp_path):
    """Two looping streams side by side: stream 0 switches bars → blob halfway through its folder, stream 1
    is all blob. The page shows each stream's coloured frame and label, and the labels it has shown
    change with the model's."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "socket_edge.cli", "run", str(switching["model"]), "--source",
         switching["glob"] + "?loop=1", "--source", switching["blob"] + "?loop=1", "--view", "127.0.0.1:0", "-q",
         "--threads", "1"], env={**ENV, "PYTHONFAULTHANDLER": "1"}, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as at a terminal, also under a background runner (which starts with SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stderr.readline()
        assert line.startswith("live view: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        deadline = time.monotonic() + 30
        while min(s["frames"] for s in json.loads(get(url + "state.json"))["streams"]) < 50:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        shot = tmp_path / "page.png"
        browser = DevTools()
        try:
            page, png = browser.page(url, PAGE_READY)
        finally:
            browser.close()
        shot.write_bytes(png)
    finally:
        err = interrupted(proc)
    assert proc.returncode == 130 and "(interrupted)" in err and "Traceback" not in err, err
    for i, label in ((0, None), (1, "blob")):
        assert f'id="s{i}-card"' in page, page
        shown = int(page.split(f'id="s{i}-img"')[1].split('data-shown="')[1].split('"')[0])
        assert shown >= 1, page  # pictures arrived and were drawn
        text = page.split(f'id="s{i}-label"')[1].split(">")[1].split("<")[0]
        assert text in ("bars", "blob") if label is None else text == label, page
    changes = page.split('id="s0-changes"')[1].split("</ol>")[0]
    assert "bars at frame" in changes and "blob at frame" in changes, changes  # the page followed the switch
    assert "FPS" in page.split('id="s0-stats"')[1].split("<")[0]
    assert turbo_pixels(shot) > 30000  # two coloured depth frames, not an empty page


def test_a_frame_the_view_cannot_draw_is_said_on_the_page():
    """The sampler thread survives a frame OpenCV cannot colour, and the page says why."""
    with LiveView(("127.0.0.1", 0), ["odd://"]) as view:
        view.start("m.onnx", "rgb", CLASSES)
        get(view.url + "state.json")  # watched: the sampler draws pictures
        view.stream(0).write({"frame": 0, "label": "bars", "score": 1.0, "top_k": [], "latency_ms": 1.0},
                             np.zeros((4, 4, 5), np.uint8))
        deadline = time.monotonic() + 10
        while (state := json.loads(get(view.url + "state.json")))["problem"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert state["problem"].startswith("the view cannot draw a frame") and state["streams"][0]["frames"] == 1
        assert view.threads[1].is_alive()


def test_closing_the_view_ends_while_a_page_keeps_polling():
    """close() hangs up a page that polls over keep-alive (its connection's thread once served it on
    after the view had closed), and does so at once."""
    import http.client

    view = LiveView(("127.0.0.1", 0), ["a"]).start("m.onnx", "depth", ["x"])
    port = view.server.server_address[1]
    stop, answered, ended = threading.Event(), [], []

    def poll() -> None:  # one connection, a request every 50 ms, as the page does
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            while not stop.is_set():
                connection.request("GET", "/state.json?since=-1")
                answered.append(json.loads(connection.getresponse().read())["streams"][0]["source"])
                time.sleep(0.05)
        except (OSError, http.client.HTTPException):
            ended.append(time.monotonic())
        finally:
            connection.close()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    while len(answered) < 3:
        time.sleep(0.01)
    started = time.monotonic()
    view.close()
    took = time.monotonic() - started
    poller.join(timeout=5)
    stop.set()
    assert answered[:3] == ["a", "a", "a"]
    assert took < 3, f"close() took {took:.1f} s while a page polled"
    assert ended and ended[0] - started < 3  # the page's connection was hung up, not served on
