"""Reading one image file with OpenCV (IMREAD_UNCHANGED) and checking it against a modality."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from socket_edge.atomic import write_bytes, write_error
from socket_edge.data.preprocess import check_channels
from socket_edge.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".webp")


def is_image(path: Path) -> bool:
    """True for a visible file with an image suffix."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, modality: str) -> np.ndarray:
    """Decode an image file: H×W×3 uint8 in RGB order for rgb, H×W (8/16-bit) otherwise.

    Fails with one line naming the file for an empty or corrupt file, 8-bit depth,
    or a colour image where a single channel is expected."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror}") from None
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes); delete it or replace it with the real image")
    frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if frame is None or frame.size == 0:
        raise DataError(f"{path} cannot be decoded as an image (corrupt or not an image); re-export it or remove it")
    if modality == "depth" and frame.dtype == np.uint8:
        raise DataError(
            f"{path} is 8-bit; depth must be 16-bit (millimetres). "
            "Pass --depth-scale if your files use another unit."
        )
    frame = check_channels(frame, modality, str(path))
    if modality == "rgb":
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return frame


def write_image(path: str | Path, frame: np.ndarray, atomic: bool = True) -> None:
    """Write an image (RGB input order for colour frames), making parent folders; atomically
    unless the caller writes into a folder that is itself renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if frame.ndim == 3 and frame.shape[2] == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix, frame)
    if not ok:
        raise DataError(f"cannot encode {path.name} as {path.suffix}")
    if not atomic:
        try:
            path.write_bytes(buf.tobytes())
        except OSError as exc:
            raise write_error(path, exc) from None
        return
    write_bytes(path, [buf.tobytes()])


def sniff_modality(path: str | Path) -> str:
    """'rgb' for a colour file, else 'depth' (16-bit) or 'ir' (8-bit): a guess used to refuse
    colour data for a single-channel model and the reverse."""
    frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if frame is None:
        raise DataError(f"{path} cannot be decoded as an image (corrupt or not an image); re-export it or remove it")
    if frame.ndim == 3 and frame.shape[2] >= 3:
        return "rgb"
    return "depth" if frame.dtype == np.uint16 else "ir"
