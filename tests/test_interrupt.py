"""Ctrl-C in the frame loops (socket_edge.interrupt): the first one sets a flag the loop checks between
frames, so no KeyboardInterrupt lands inside a queue's lock; a second one interrupts at once. A run hit
by Ctrl-C ends, says so, and leaves its capture queues unlocked (a held lock hung `run --view` in CI)."""

from __future__ import annotations

import os
import queue
import random
import signal
import threading
import time

import pytest

from socket_edge.backends import open_model
from socket_edge.interrupt import CtrlC
from socket_edge.runtime import pipeline
from socket_edge.runtime.capture import Capture
from socket_edge.runtime.multistream import run_streams
from socket_edge.runtime.uri import parse_source
from test_runtime import depth_frames, linear_onnx, save_pngs


@pytest.fixture()
def default_ctrl_c():
    """SIGINT handled by Python's default handler, as at a terminal (a background job starts with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def ctrl_c_later(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_the_first_ctrl_c_sets_the_flag_and_the_second_interrupts(default_ctrl_c):
    with CtrlC() as ctrl_c:
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler and not ctrl_c.pressed
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs in this thread, between two bytecodes
        assert ctrl_c.pressed
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job: Ctrl-C stays ignored
    with CtrlC() as ctrl_c:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    seen = []
    thread = threading.Thread(target=lambda: seen.append(CtrlC().__enter__()._previous))
    thread.start()
    thread.join()
    assert seen == [None]  # only the main thread can take SIGINT over


def test_ctrl_c_never_leaves_a_queue_lock_held(default_ctrl_c):
    """A loop polling an empty queue, as the run loop polls its captures: without CtrlC about one Ctrl-C in
    nine raised KeyboardInterrupt just after queue.get took the queue's lock, which then stayed held."""
    jobs = queue.Queue(maxsize=8)
    for _ in range(200):
        with CtrlC() as ctrl_c:
            timer = ctrl_c_later(random.uniform(0.0002, 0.002))
            while not ctrl_c.pressed:
                try:
                    jobs.get_nowait()
                except queue.Empty:
                    pass
            timer.join()
        assert not jobs.mutex.locked()


@pytest.fixture(scope="module")
def looping(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("ctrl-c")
    save_pngs(root / "loop", depth_frames(n=3))
    return open_model(linear_onnx(root / "depth.onnx", "depth")), parse_source(f"{root / 'loop'}?loop=1")


class Watched:
    """An output that counts frames and notes how SIGINT is handled while the loop runs."""

    def __init__(self) -> None:
        self.frames, self.handlers = 0, set()

    def write(self, rec: dict, image) -> None:
        self.frames += 1
        self.handlers.add(signal.getsignal(signal.SIGINT))

    def close(self) -> None:
        pass


def test_ctrl_c_ends_a_looping_run_of_one_or_several_streams(default_ctrl_c, looping, monkeypatch):
    model, spec = looping
    captures: list[Capture] = []
    start = Capture.start
    monkeypatch.setattr(Capture, "start", lambda self: captures.append(self) or start(self))
    for run in (lambda out: pipeline.run(model, spec, [out]),
                lambda out: run_streams(model, [spec, spec], [[out], [Watched()]])):
        out = Watched()
        ctrl_c_later(0.5)
        began = time.monotonic()
        summary = run(out)
        assert summary.interrupted and out.frames > 0 and time.monotonic() - began < 10
        assert signal.default_int_handler not in out.handlers  # Ctrl-C was a flag throughout the loop
        assert captures and not any(c.queue.mutex.locked() or c.thread.is_alive() for c in captures)
        captures.clear()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
