"""Load a list of image files into one array of prepared raw frames (validating every file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from socket_edge.contract import InputContract
from socket_edge.data.images import read_image
from socket_edge.data.preprocess import prepare
from socket_edge.progress import bar


def intensity_dtype(first_file: Path, modality: str) -> str | None:
    """Infrared keeps its files' bit depth ('uint8' or 'uint16'); None for rgb and depth."""
    if modality not in ("ir", "nir"):
        return None
    return "uint16" if read_image(first_file, modality).dtype == np.uint16 else "uint8"


def load_frames(files: Sequence[Path], contract: InputContract, *, modality: str | None = None,
                source_unit: float | None = None, desc: str = "loading", progress: bool = True) -> np.ndarray:
    """Read and prepare every file: float32 N×C×H×W raw values in contract units.

    `modality` is what the files are (default: the contract's); frames of another
    modality than the model's are refused before anything is read."""
    modality = modality or contract.modality
    contract.check_modality(modality, what=f"data ({modality})")
    out = np.empty((len(files), *contract.input_shape), dtype=np.float32)
    for i, path in enumerate(bar(files, desc=desc, enabled=progress)):
        out[i] = prepare(read_image(path, modality), contract, source_unit=source_unit, name=str(path))
    return out
