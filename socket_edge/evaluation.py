"""Classification metrics and the confusion-matrix plot (numpy; matplotlib inside the plot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def confusion(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    return matrix


def metrics(labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...] | list[str]) -> dict:
    """Accuracy (%), per-class accuracy (%) for classes present in `labels`, the confusion matrix."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(probs).argmax(axis=1)
    matrix = confusion(labels, preds, len(class_names))
    per_class = {
        name: round(100.0 * float(matrix[i, i]) / float(matrix[i].sum()), 2)
        for i, name in enumerate(class_names) if matrix[i].sum() > 0
    }
    return {
        "accuracy": round(100.0 * float((preds == labels).mean()), 2) if len(labels) else 0.0,
        "n": int(len(labels)),
        "per_class": per_class,
        "classes": list(class_names),
        "confusion": matrix.tolist(),
    }


def plot_confusion(result: dict, out: str | Path, title: str = "") -> Path:
    """Save the confusion matrix (row-normalised colours, counts written) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(result["confusion"], dtype=float)
    names = result["classes"]
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 1.6 + 0.55 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
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
    fig.tight_layout()
    from socket_edge import atomic

    try:
        return atomic.write_with(out, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)


def contract_labels(images, contract, what: str) -> np.ndarray:
    """Labels of class-folder images (an ImageList) as indices into the contract's class names,
    refusing class folders the model does not know."""
    from socket_edge.data.preprocess import check_class_names

    check_class_names(contract.class_names, images.class_names, what)
    return np.array([contract.class_names.index(images.class_names[i]) for i in images.labels], dtype=np.int64)


class _TorchModel:
    """A .pt artifact evaluated through PyTorch."""

    def __init__(self, ensemble, device) -> None:
        self.ensemble, self.device = ensemble, device
        self.contract = ensemble.contract

    def with_contract(self, contract) -> "_TorchModel":
        return _TorchModel(self.ensemble.with_contract(contract), self.device)

    def predict(self, frames: np.ndarray, batch_size: int, progress: bool) -> np.ndarray:
        from socket_edge.models.torch_utils import predict

        return predict(self.ensemble, frames, self.device, batch_size, progress=progress)


class _ExportedModel:
    """An exported graph (.onnx through ONNX Runtime, .engine through TensorRT): its contract is
    built into the graph, so it cannot be fed another modality's units."""

    def __init__(self, path: Path, runner) -> None:
        self.path, self.runner = path, runner
        self.contract = runner.contract

    def with_contract(self, contract) -> "_ExportedModel":
        from socket_edge.errors import ContractError

        raise ContractError(
            f"{self.path} has its {self.contract.modality} input contract built into the graph and cannot be fed "
            f"{contract.modality} as it is; evaluate the .pt with --modality {contract.modality} instead"
        )

    def predict(self, frames: np.ndarray, batch_size: int, progress: bool) -> np.ndarray:
        return self.runner.predict(frames, batch_size)


def open_model(model_path: str | Path, device: str = "auto"):
    """A model file for evaluation, by suffix: .onnx (ONNX Runtime), .engine (TensorRT), else a .pt
    artifact (PyTorch). `device`: auto, cpu or cuda."""
    path = Path(model_path)
    if path.suffix == ".onnx":
        from socket_edge.runtime.onnx_model import OnnxModel

        return _ExportedModel(path, OnnxModel(path, providers=None if device == "auto" else device))
    if path.suffix == ".engine":
        from socket_edge.export.tensorrt import EngineModel

        return _ExportedModel(path, EngineModel(path))
    from socket_edge.models import artifact
    from socket_edge.models.torch_utils import resolve_device

    model, _ = artifact.load(path)
    return _TorchModel(model, resolve_device(device))


def evaluate(model_path: str | Path, data_root: str | Path, *, modality: str | None = None,
             depth_scale: float | None = None, batch_size: int = 64, device: str = "auto",
             progress: bool = True, classes: list[str] | None = None) -> dict:
    """Accuracy of a model file (.pt artifact, exported .onnx or .engine) on labelled class folders.

    The modality comes from the model's contract. `modality` feeds the model another
    modality as it is (the unadapted cross-modal baseline): frames are read in that
    modality's units and normalised the way the model normalised its own inputs (.pt only)."""
    from socket_edge.contract import DEFAULT_DEPTH_SCALE
    from socket_edge.data.folders import class_folders
    from socket_edge.data.images import sniff_modality
    from socket_edge.data.loading import intensity_dtype, load_frames
    from socket_edge.errors import ContractError

    model = open_model(model_path, device)
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
    frames = load_frames(images.files, contract, source_unit=depth_scale, desc="reading images", progress=progress)
    probs = model.predict(frames, batch_size, progress)
    result = metrics(labels, probs, contract.class_names)
    result.update(model=str(model_path), data=str(images.root), modality=contract.modality, trained_on=trained_on)
    return result
