"""Frames to check an export on, and the comparison of two sets of probabilities.

Real target images when given (`--check-data DIR`: class folders, whose labels also give
accuracy, or flat images), read with the same host-side loading as evaluation; else frames
generated to be plausible for the contract (depth: tilted planes in range with noise and
holes; intensity: smooth patterns over the full scale)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socket_edge.contract import RAW_DTYPES, InputContract
from socket_edge.errors import ArtifactError
from socket_edge.metrics import metrics

FP32_GOAL = 1e-4  # max |Δp| between PyTorch and an fp32 export
GENERATED = 32    # generated frames when no check data is given


@dataclass(frozen=True)
class CheckFrames:
    """Raw frames in contract units, their labels (None: unlabelled) and where they came from."""

    frames: np.ndarray
    labels: np.ndarray | None
    source: str


def generated_frames(contract: InputContract, n: int = GENERATED, seed: int = 0) -> np.ndarray:
    """Plausible raw frames (float32 N×C×H×W, integer values as a sensor gives them)."""
    rng = np.random.default_rng(seed)
    c, h, w = contract.input_shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.empty((n, c, h, w), np.float32)
    full = RAW_DTYPES[contract.raw_dtype]
    for i in range(n):
        if contract.modality == "depth":
            lo, hi = contract.valid_range
            near, far = max(lo, 0.3), min(hi, 6.0)
            base = rng.uniform(near, far)
            metres = base + rng.uniform(-1, 1) * xx + rng.uniform(-1, 1) * yy + rng.normal(0, 0.01 * base ** 2, (h, w))
            frame = np.clip(np.round(np.clip(metres, near / 2, hi * 1.2) / contract.unit), 1, full)
            frame[rng.random((h, w)) < 0.05] = 0  # holes: no reading
            out[i] = frame
        else:
            pattern = 0.5 + 0.25 * np.sin(rng.uniform(3, 20) * xx + rng.uniform(0, 6)) * np.cos(rng.uniform(3, 20) * yy)
            levels = pattern[None] * rng.uniform(0.6, 1.2, (c, 1, 1)) + rng.normal(0, 0.03, (c, h, w))
            out[i] = np.round(np.clip(levels, 0, 1) * full)
    return out


def check_frames(contract: InputContract, data: str | Path | None, *, progress: bool = False) -> CheckFrames:
    """Frames for parity (and pruning) checks: `data` read as evaluation reads it, else generated."""
    if data is None:
        return CheckFrames(generated_frames(contract), None, f"{GENERATED} generated {contract.modality} frames")
    from socket_edge.data.folders import contract_labels, unlabeled_images
    from socket_edge.data.loading import load_frames

    images = unlabeled_images(data, "check data")
    labels = contract_labels(images, contract, f"check data {images.root}") if images.class_names else None
    frames = load_frames(images.files, contract, desc="reading check data", progress=progress)
    return CheckFrames(frames, labels, f"{len(frames)} images of {images.root}")


def compare(reference: np.ndarray, probs: np.ndarray) -> dict:
    """max |Δp| and argmax agreement (%) of two N×classes probability arrays."""
    finite = bool(np.isfinite(probs).all())
    diff = float(np.abs(reference - probs).max()) if finite and len(probs) else float("nan")
    agree = float((reference.argmax(1) == probs.argmax(1)).mean() * 100) if len(probs) else 0.0
    return {"n": int(len(probs)), "max_abs_diff": diff, "argmax_agreement": round(agree, 2), "finite": finite}


def accuracy(probs: np.ndarray, check: CheckFrames, class_names: tuple[str, ...]) -> float | None:
    """Accuracy (%) of `probs` on labelled check frames; None for unlabelled ones."""
    return None if check.labels is None else metrics(check.labels, probs, class_names)["accuracy"]


def measure(runner, precision: str, reference: np.ndarray, check: CheckFrames, class_names: tuple[str, ...]) -> dict:
    """Compare a runner's probabilities (an OnnxModel or EngineModel) with the fp32 reference ones,
    and both accuracies when the check frames have labels; refuse NaN (nothing is written then)."""
    probs = runner.predict(check.frames, 32)
    result = {"precision": precision, "frames": check.source, **compare(reference, probs)}
    if check.labels is not None and result["finite"]:
        result.update(accuracy=accuracy(probs, check, class_names), accuracy_fp32=accuracy(reference, check, class_names))
    if not result["finite"]:
        raise ArtifactError(f"the exported {precision} graph gives NaN or infinite probabilities on {check.source}; "
                            "nothing was written. Check the model with socket-edge eval")
    if precision == "fp32":
        result.update(goal=FP32_GOAL, ok=result["max_abs_diff"] <= FP32_GOAL)
    return result

