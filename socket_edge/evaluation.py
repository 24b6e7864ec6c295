"""`socket-edge eval`: the accuracy of a model file on labelled class folders, and the
confusion-matrix plot. The model is opened through socket_edge.backends, so an edge install
evaluates .onnx and .engine files without torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socket_edge.backends import open_model
from socket_edge.metrics import metrics
from socket_edge.progress import bar


def plot_confusion(result: dict, out: str | Path, title: str = "") -> Path:
    """Save the confusion matrix (row-normalised colours, counts written) as a PNG, atomically."""
    from socket_edge.plotting import figure, save_png

    matrix = np.asarray(result["confusion"], dtype=float)
    names = result["classes"]
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.6 + 0.55 * len(names)
    fig = figure((size + 1.5, size), dpi=110)
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, int(count), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {result['accuracy']:.1f}% (n={result['n']})")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    return save_png(fig, out)


def evaluate(model_path: str | Path, data_root: str | Path, *, modality: str | None = None,
             depth_scale: float | None = None, batch_size: int = 64, device: str = "auto",
             progress: bool = True, classes: list[str] | None = None) -> dict:
    """Accuracy of a model file (.pt artifact, exported .onnx or .engine) on labelled class folders.

    The modality comes from the model's contract. `modality` feeds the model another
    modality as it is (the unadapted cross-modal baseline): frames are read in that
    modality's units and normalised the way the model normalised its own inputs (.pt only)."""
    from socket_edge.contract import DEFAULT_DEPTH_SCALE
    from socket_edge.data.folders import class_folders, contract_labels
    from socket_edge.data.images import sniff_modality
    from socket_edge.data.loading import intensity_dtype, load_frames
    from socket_edge.errors import ContractError

    model = open_model(model_path, device=device)
    trained_on = model.contract.modality
    images = class_folders(data_root, "evaluation data", classes)
    if modality is None:
        seen = sniff_modality(images.files[0])
        if (trained_on == "rgb") != (seen == "rgb"):
            kind = "a colour (rgb)" if seen == "rgb" else "a single-channel"
            raise ContractError(
                f"{model_path} expects {trained_on} images but {images.files[0]} is {kind} image; evaluate on "
                f"{trained_on} data, or pass --modality to measure this model unadapted on another modality"
            )
        if trained_on == "depth" and seen == "ir":
            raise ContractError(
                f"{model_path} expects depth images (16-bit) but {images.files[0]} is an 8-bit single-channel image, "
                "as infrared is; evaluate on depth data, or pass --modality ir to measure this model unadapted on "
                "infrared"
            )
    elif modality != trained_on:
        target = model.contract.retarget(
            modality, depth_scale=depth_scale or DEFAULT_DEPTH_SCALE, raw_dtype=intensity_dtype(images.files[0], modality)
        )
        model, depth_scale = model.with_contract(target), None
    contract = model.contract
    labels = contract_labels(images, contract, f"evaluation data {images.root}")
    files = images.files  # read and predicted a batch at a time: memory does not grow with the data
    starts = range(0, len(files), batch_size)
    probs = np.concatenate([
        model.predict(load_frames(files[i:i + batch_size], contract, source_unit=depth_scale, progress=False),
                      batch_size, False)
        for i in bar(starts, desc="evaluating", enabled=progress, total=len(starts))])
    result = metrics(labels, probs, contract.class_names)
    result.update(model=str(model_path), data=str(images.root), modality=contract.modality, trained_on=trained_on)
    return result
