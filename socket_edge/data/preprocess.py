"""Host-side preprocessing: the ONE implementation (numpy/OpenCV) that turns a decoded
frame into the raw network input of a contract. Used by evaluation, training data
loading and the runtime alike. The in-graph half lives in models/input_module.py."""

from __future__ import annotations

import cv2
import numpy as np

from socket_edge.contract import RAW_DTYPES, InputContract
from socket_edge.errors import ContractError, DataError


def check_channels(frame: np.ndarray, modality: str, name: str = "frame") -> np.ndarray:
    """Return the frame as H×W×3 (rgb) or H×W (single channel), or fail naming the fix."""
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if modality == "rgb":
        if frame.ndim == 3 and frame.shape[2] == 4:
            return frame[:, :, :3]
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise DataError(f"{name} has {_channels(frame)} channel(s); rgb needs 3-channel colour images")
        return frame
    if frame.ndim != 2:
        raise DataError(
            f"{name} has {_channels(frame)} channels; {modality} needs single-channel images. "
            f"Is this an RGB file among {modality} images?"
        )
    return frame


def to_contract_units(frame: np.ndarray, contract: InputContract, *, source_unit: float | None = None,
                      name: str = "frame") -> np.ndarray:
    """Convert raw values into the contract's raw unit, as float32.

    Depth: `source_unit` is metres per unit of the frame (RealSense depth scale, or
    --depth-scale); defaults to the contract's unit. 8-bit depth is refused.
    Intensity: 8- and 16-bit frames are rescaled to the contract's bit depth.
    """
    if contract.modality == "depth":
        if frame.dtype == np.uint8:
            raise DataError(
                f"{name} is 8-bit; depth must be 16-bit (millimetres). "
                "Pass --depth-scale if your files use another unit."
            )
        if frame.dtype.kind == "f" and source_unit is None:
            raise DataError(f"{name} holds floating-point depth; pass --depth-scale (metres per value, 1 for metres)")
        if frame.dtype not in (np.uint16, np.float32, np.float64, np.int32):
            raise DataError(f"{name} has dtype {frame.dtype}; depth must be 16-bit unsigned")
        out = frame.astype(np.float32)
        unit = contract.unit if source_unit is None else float(source_unit)
        if unit <= 0:
            raise DataError(f"depth scale {unit} must be positive (metres per unit, e.g. 0.001 for mm)")
        if not np.isclose(unit, contract.unit, rtol=1e-9, atol=0):
            out *= np.float32(unit / contract.unit)
        return out
    full = _full_scale(frame, name)
    out = frame.astype(np.float32)
    target = RAW_DTYPES[contract.raw_dtype]
    if full != target:
        out *= np.float32(target / full)
    return out


def resize(frame: np.ndarray, contract: InputContract) -> np.ndarray:
    """Resize to the contract's size with its policy. Depth uses nearest neighbour so that
    holes (0) never blend into valid readings."""
    h, w = contract.size
    interp_small = cv2.INTER_NEAREST if contract.invalid_zero else cv2.INTER_AREA
    interp_big = cv2.INTER_NEAREST if contract.invalid_zero else cv2.INTER_LINEAR
    fh, fw = frame.shape[:2]
    if contract.resize == "center_crop":
        s = max(h / fh, w / fw)
        nh, nw = max(h, round(fh * s)), max(w, round(fw * s))
        frame = cv2.resize(frame, (nw, nh), interpolation=interp_small if s < 1 else interp_big)
        top, left = (nh - h) // 2, (nw - w) // 2
        return frame[top:top + h, left:left + w]
    if (fh, fw) == (h, w):
        return frame
    shrink = fh * fw > h * w
    return cv2.resize(frame, (w, h), interpolation=interp_small if shrink else interp_big)


def prepare(frame: np.ndarray, contract: InputContract, *, source_unit: float | None = None,
            name: str = "frame") -> np.ndarray:
    """Decoded frame (RGB order for colour) → float32 C×H×W raw network input."""
    if frame.size == 0:
        raise DataError(f"{name} is empty (0 pixels)")
    frame = check_channels(frame, contract.modality, name)
    frame = to_contract_units(frame, contract, source_unit=source_unit, name=name)
    frame = resize(frame, contract)
    if frame.ndim == 2:
        return frame[None]
    return np.ascontiguousarray(frame.transpose(2, 0, 1))


def prepare_raw(frame: np.ndarray, contract: InputContract, name: str = "frame") -> np.ndarray:
    """Decoded frame → C×H×W at the contract's size in its raw dtype (uint8/uint16), as the frame
    cache stores it: the checks of `prepare`, and a file of another bit depth rescaled to the
    contract's. Unit conversion and normalisation stay in the model's input module."""
    if frame.size == 0:
        raise DataError(f"{name} is empty (0 pixels)")
    frame = check_channels(frame, contract.modality, name)
    raw = np.dtype(contract.raw_dtype)
    if frame.dtype != raw:  # to_contract_units refuses what the contract cannot take (8-bit depth)
        values = to_contract_units(frame, contract, name=name)
        frame = np.clip(np.rint(values), 0, np.iinfo(raw).max).astype(raw)
    frame = resize(np.ascontiguousarray(frame), contract)
    if frame.ndim == 2:
        return frame[None]
    return np.ascontiguousarray(frame.transpose(2, 0, 1))


def check_class_names(expected: tuple[str, ...] | list[str], found: tuple[str, ...] | list[str],
                      what: str) -> None:
    """Refuse data whose class folders are not the model's classes."""
    missing = sorted(set(found) - set(expected))
    if missing:
        raise ContractError(
            f"{what} has classes the model does not know: {', '.join(missing)}; "
            f"the model's classes are {', '.join(expected)}"
        )


def _full_scale(frame: np.ndarray, name: str) -> int:
    if frame.dtype == np.uint8:
        return 255
    if frame.dtype == np.uint16:
        return 65535
    raise DataError(f"{name} has dtype {frame.dtype}; images must be 8- or 16-bit")


def _channels(frame: np.ndarray) -> int:
    return 1 if frame.ndim == 2 else frame.shape[2]
