"""`collect` from a ROS 2 bag (data.ros2bag): colour + depth/infrared pairs matched by header stamp.

    ros2bag://PATH?topic=/camera/camera/aligned_depth_to_color/image_raw
                  &colour_topic=/camera/camera/color/image_raw[&tolerance_ms=5]

`topic` is the depth or infrared topic (the stream the model sees, as `run` takes it); its encoding
says which (16UC1: depth in mm, mono8/mono16: infrared). `colour_topic` (rgb8/bgr8) gives the other
half of TI pairs: realsense-ros publishes depth resampled onto the colour camera's grid
(`align_depth.enable:=true`), so the two images of a pair must be the same size. A target image
pairs with the colour image of the same header stamp, or with `tolerance_ms`, the nearest one within
that many milliseconds; target images without a partner count as dropped."""

from __future__ import annotations

from urllib.parse import parse_qsl

import cv2
import numpy as np

from socket_edge.capture.realsense import Pair
from socket_edge.data.ros2bag import ImageTopic, PairedTopics
from socket_edge.errors import DataError, UsageError

SCHEME = "ros2bag://"
OPTIONS = ("topic", "colour_topic", "tolerance_ms")


def parse_bag_source(source: str) -> tuple[str, str, str | None, int]:
    """(bag path, target topic, colour topic or None, tolerance in ns) of a ros2bag:// source."""
    text, _, query = source[len(SCHEME):].partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"source {source!r}: a ROS 2 bag takes {', '.join(OPTIONS)}; drop {', '.join(unknown)}")
    if not text or not options.get("topic"):
        raise UsageError(f"source {source!r}: give ros2bag://PATH?topic=DEPTH_OR_IR_TOPIC&colour_topic=COLOUR_TOPIC")
    try:
        tolerance_ms = float(options.get("tolerance_ms", 0))
    except ValueError:
        raise UsageError(f"source {source!r}: tolerance_ms must be milliseconds, "
                         f"got {options['tolerance_ms']!r}") from None
    if not 0 <= tolerance_ms < 1000:
        raise UsageError(f"source {source!r}: tolerance_ms must be from 0 (equal stamps) to below 1000, "
                         f"got {tolerance_ms:g}")
    return text, options["topic"], options.get("colour_topic") or None, round(tolerance_ms * 1e6)


def grey_colour(target: np.ndarray) -> np.ndarray:
    """An RGB 8-bit picture of a target image, for --min-change where the bag gives no colour topic."""
    hi = max(float(target.max()), 1.0)
    grey = np.clip(target.astype(np.float32) * (255.0 / hi), 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


class BagPairedStream:
    """PairedStream's interface (open, read → Pair | None, close, `stream`, `dropped`) over a ROS 2 bag.
    `stream` (depth or infrared) comes from the target topic's encoding, read when it is made."""

    def __init__(self, source: str, stream: str | None = None) -> None:
        self.source = source
        self.path, self.topic, self.colour_topic, self.tolerance_ns = parse_bag_source(source)
        self.kind, self.target = "recording", str(self.path)  # as PairedStream's: collect never writes into it
        probe = ImageTopic(self.path, self.topic)
        probe.open()
        probe.close()
        found = "depth" if probe.modality == "depth" else "infrared"
        if stream is not None and stream != found:
            raise UsageError(f"{self.topic} in {self.path} holds {found} images ({probe.encoding}) but --stream is "
                             f"{stream}; drop --stream or pick the {stream} topic")
        self.stream = found
        self.dropped = 0
        self.pairs: PairedTopics | None = None
        self.images: ImageTopic | None = None
        self.number = 0
        self.unpaired: tuple[int, int, int] | None = None  # (target images unpaired, of all, colour unpaired)

    @property
    def paired(self) -> bool:
        return self.colour_topic is not None

    def open(self) -> None:
        if self.paired:
            self.pairs = PairedTopics(self.path, self.colour_topic, self.topic, self.tolerance_ns)
            self.pairs.open()
            self.dropped = self.pairs.unpaired_target
            self.unpaired = (self.pairs.unpaired_target, self.pairs.targets, self.pairs.unpaired_colour)
        else:
            self.images = ImageTopic(self.path, self.topic)
            self.images.open()

    def read(self) -> Pair | None:
        if self.pairs is not None:
            item = self.pairs.read()
            if item is None:
                return None
            colour, target = item
            if colour.image.shape[:2] != target.image.shape:
                raise DataError(f"{self.colour_topic} is {colour.image.shape[1]}×{colour.image.shape[0]} but "
                                f"{self.topic} is {target.image.shape[1]}×{target.image.shape[0]} in {self.path}; TI "
                                "pairs need depth on the colour grid: record realsense-ros with "
                                "align_depth.enable:=true and use /camera/camera/aligned_depth_to_color/image_raw")
            pixels, colour_pixels = target.image, colour.image
        else:
            target = self.images.read() if self.images is not None else None
            if target is None:
                return None
            pixels = target.image
            colour_pixels = grey_colour(pixels)
        pair = Pair(colour_pixels, pixels, self.number, target.stamp_ns / 1e9)
        self.number += 1
        return pair

    def report(self) -> str | None:
        """One line on the images that found no partner (None when every image of both topics paired)."""
        if self.unpaired is None or not (self.unpaired[0] or self.unpaired[2]):
            return None
        target, targets, colour = self.unpaired
        within = f"within {self.tolerance_ns / 1e6:g} ms" if self.tolerance_ns else "with the same stamp"
        return (f"{target} of {targets} {self.stream} images of {self.topic} found no colour image {within} "
                f"(dropped); {colour} colour images of {self.colour_topic} "
                "were left unpaired" + ("" if self.tolerance_ns else "; allow a difference with &tolerance_ms=N"))

    def close(self) -> None:
        for reader in (self.pairs, self.images):
            if reader is not None:
                reader.close()
        self.pairs = self.images = None
