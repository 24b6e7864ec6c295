"""The collect loop: pairs from a PairedStream, picked by a Selector, written by a Layout, until the
source ends, --max frames are kept, --seconds of stream time have passed, or Ctrl-C (which keeps
what was written). A live counter goes to stderr."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from socket_edge.capture.layout import Layout
from socket_edge.capture.realsense import PairedStream
from socket_edge.capture.selection import Selector
from socket_edge.interrupt import CtrlC


@dataclass
class Summary:
    """What one run did: frames kept (written), skipped (by --every/--min-change), dropped (never
    arrived whole), whether Ctrl-C ended it, and the files per class now in the output."""

    kept: int = 0
    skipped: int = 0
    dropped: int = 0
    interrupted: bool = False
    per_class: dict[str, int] = field(default_factory=dict)

    def describe(self, layout: Layout) -> str:
        what = "pairs" if layout.role == "ti" else "frames"
        classes = ", ".join(f"{name} {count}" for name, count in self.per_class.items() if name)
        held = f"{layout.out} holds {what} per class: {classes}" if classes else \
            f"{layout.out} holds {sum(self.per_class.values())} {what}"
        ending = " (interrupted)" if self.interrupted else ""
        return (f"collected {self.kept} {what}{ending}: {self.skipped} skipped, {self.dropped} dropped; {held}")


class Counter:
    """A one-line live counter on stderr, redrawn at most 5 times a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.shown = enabled, 0.0

    def show(self, summary: Summary, force: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self.shown >= 0.2):
            print(f"\r{summary.kept} kept, {summary.skipped} skipped, {summary.dropped} dropped", end="",
                  file=sys.stderr, flush=True)
            self.shown = now

    def end(self, summary: Summary) -> None:
        if self.enabled:
            self.show(summary, force=True)
            print(file=sys.stderr)


def collect(stream: PairedStream, layout: Layout, selector: Selector, *, max_frames: int | None = None,
            seconds: float | None = None, progress: bool = True) -> Summary:
    """Run the loop; `stream` is opened here and closed at the end, however it ends."""
    summary, counter = Summary(), Counter(progress)
    layout.check_folders()
    stream.open()
    with CtrlC() as ctrl_c:  # a Ctrl-C ends the loop between pairs: never a colour image without its partner
        try:
            number, start, checked = layout.next_number(), None, False
            while not ctrl_c.pressed and (max_frames is None or summary.kept < max_frames):
                pair = stream.read()
                if pair is None:
                    break
                start = pair.timestamp if start is None else start
                if seconds is not None and pair.timestamp - start >= seconds:
                    break
                if not selector.keep(pair.colour):
                    summary.skipped += 1
                else:
                    if not checked:
                        layout.check_pixels(pair.target)
                        checked = True
                    layout.write(number, pair.colour, pair.target)
                    number += 1
                    summary.kept += 1
                summary.dropped = stream.dropped
                counter.show(summary)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            summary.interrupted = summary.interrupted or ctrl_c.pressed
            stream.close()
    summary.dropped = stream.dropped
    counter.end(summary)
    summary.per_class = layout.counts()
    return summary
