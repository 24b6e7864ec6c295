"""Third-party libraries never print to our stderr on their own: where socket-edge opens, reads or
writes video through OpenCV, OpenCV's log and FFmpeg's own (av_log) are silenced, and a failure is
socket-edge's one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import cv2

# read by OpenCV's FFmpeg backend at every open (it sets av_log's level from it); -8 is AV_LOG_QUIET.
# A user who sets it (to debug a camera) keeps their value.
FFMPEG_LOGLEVEL = "OPENCV_FFMPEG_LOGLEVEL"
AV_LOG_QUIET = "-8"


# OpenCV reads it once, when its FFmpeg backend first opens a file or stream: set on import, before
# any video is opened (every runtime module that opens video imports this one)
os.environ.setdefault(FFMPEG_LOGLEVEL, AV_LOG_QUIET)


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log (`[ WARN:0@…] … Failed to write frame`) for the block."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)
