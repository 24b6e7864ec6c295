"""int8 as a Q/DQ ONNX graph: ONNX Runtime's static quantiser calibrated on target images.

The fp32 graph's body (convolutions, Gemm/MatMul and the element-wise ops between them) gets
QuantizeLinear/DequantizeLinear pairs: weights int8, symmetric, per output channel; activations per
tensor in one of two schemes. "cpu": uint8 with a zero point, the form ONNX Runtime fuses into
QLinearConv on x86 (ReLU6 folded into the range, depthwise convolutions included); "tensorrt":
int8 symmetric (zero point 0), the only form TensorRT builds as explicit int8 (a signed symmetric
graph runs on ONNX Runtime's CPU too, but slower than fp32 there: its depthwise convolutions and
clips stay unfused; docs/benchmarks.md). The input normalisation (raw sensor values: depth in millimetres, IR in 8/16-bit
levels) and everything from the softmaxes on (the ζ-weighted sum) stay float32. Calibration frames
come from `--calib DIR` (class folders or flat images, read as evaluation reads them), a seeded
draw of at most `--calib-frames` files. onnxruntime.quantization is imported inside the functions
(it needs onnx, the `train` extra)."""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from socket_edge.contract import InputContract
from socket_edge.errors import ContractError, DataError, MissingDependencyError, UsageError
from socket_edge.export.onnx_graph import NORMALIZER_SCOPE
from socket_edge.modelfile import INPUT_NAME

DEFAULT_FRAMES = 200
METHODS = ("minmax", "entropy", "percentile")
SCHEMES = ("cpu", "tensorrt")
DEFAULT_METHOD = "percentile"  # the smallest worst-case accuracy loss on rgbnir212 and synthetic depth (docs/benchmarks.md)
FLOAT_TAIL_FROM = "Softmax"  # this op and everything it feeds stay float32


@dataclass(frozen=True)
class Calibration:
    """Raw calibration frames (float32 N×C×H×W in contract units) and where they came from."""

    frames: np.ndarray
    summary: dict


def calibration_frames(contract: InputContract, root: str | Path, count: int = DEFAULT_FRAMES, seed: int = 0,
                       *, progress: bool = False) -> Calibration:
    """At most `count` images of `root` (a seeded draw), read through the model's contract; one
    usage error for an empty folder, an unreadable image or a wrong bit depth."""
    from socket_edge.data.folders import unlabeled_images
    from socket_edge.data.loading import load_frames

    try:
        images = unlabeled_images(root, "--calib")
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(images), size=min(count, len(images)), replace=False))
        files = [images.files[i] for i in chosen]
        frames = load_frames(files, contract, desc="reading calibration images", progress=progress)
    except (DataError, ContractError) as exc:
        raise UsageError(f"--calib: {exc}") from None
    summary = {"frames": len(frames), "of": len(images), "seed": seed, "folder": Path(root).name}
    return Calibration(frames, summary)


def float_nodes(proto: onnx.ModelProto) -> list[str]:
    """Names of the nodes that stay float32: the input normalisation and every node from the
    first softmax of each member to the output."""
    keep = {node.name for node in proto.graph.node if node.name.startswith(NORMALIZER_SCOPE)}
    tail: set[str] = set()
    for node in proto.graph.node:  # nodes are in topological order
        if node.op_type == FLOAT_TAIL_FROM or tail.intersection(node.input):
            keep.add(node.name)
            tail.update(node.output)
    return sorted(keep)


def _reader(frames: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    class Frames(CalibrationDataReader):
        """One raw frame per calibration step, under the graph's input name."""

        def __init__(self) -> None:
            self._next = iter(range(len(frames)))

        def get_next(self) -> dict | None:
            i = next(self._next, None)
            return None if i is None else {INPUT_NAME: frames[i:i + 1]}

    return Frames()


def to_int8(proto: onnx.ModelProto, frames: np.ndarray, method: str = DEFAULT_METHOD,
            scheme: str = "cpu") -> onnx.ModelProto:
    """The Q/DQ int8 graph of an fp32 graph, calibrated on raw frames with `method`, activations in
    `scheme` ("cpu" or "tensorrt"); input and output stay float32."""
    if method not in METHODS:
        raise UsageError(f"unknown calibration method {method!r} (methods: {', '.join(METHODS)})")
    if scheme not in SCHEMES:
        raise UsageError(f"unknown int8 scheme {scheme!r} (schemes: {', '.join(SCHEMES)})")
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise MissingDependencyError(f"--int8 needs onnxruntime's quantiser ({exc}); "
                                     "pip install 'socket-edge[train]'") from None
    symmetric = scheme == "tensorrt"
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory(prefix="socket-edge-int8-") as tmp:
        given, source, target = (str(Path(tmp) / name) for name in ("fp32.onnx", "ready.onnx", "int8.onnx"))
        onnx.save(proto, given)
        quant_pre_process(given, source)  # shape inference (the slimmed graph has nothing left to fold)
        with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress: keep --json clean
            quantize_static(
                source, target, _reader(frames), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=calibrate, nodes_to_exclude=float_nodes(onnx.load(source)),
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                               "CalibTensorRangeSymmetric": symmetric},
            )
        return onnx.load(target)
