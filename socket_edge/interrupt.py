"""Ctrl-C for the frame loops (`run`, `collect`): a flag the loop checks between frames.

Python raises KeyboardInterrupt wherever the main thread stands when it handles the signal, including
just after a lock was taken inside queue.Queue.get (CPython checks for signals after each call into C,
before the `with` block that would release it begins): the capture queue's lock stays held, and the
capture's stop() in the loop's cleanup then waits on it forever, a run that never ends. In a loop
polling an empty queue, 324 of 3000 Ctrl-Cs left its lock held here. So inside `CtrlC` the first Ctrl-C
only sets `pressed`; the loop ends before its next frame and cleans up as usual. A second Ctrl-C
raises KeyboardInterrupt at once (for a loop stuck in a driver call)."""

from __future__ import annotations

import signal
import threading

POLL_S = 0.1  # the longest a loop waits for a frame before it looks at the flag again


class CtrlC:
    """A with-block during which SIGINT sets `pressed` instead of raising. It takes over only Python's
    own default handler, in the main thread: a signal ignored (a background job) or handled by the
    caller stays so, and in another thread `pressed` stays False (KeyboardInterrupt as before)."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous = None

    def __enter__(self) -> "CtrlC":
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
