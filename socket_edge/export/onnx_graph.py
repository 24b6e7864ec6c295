"""The Ensemble as one ONNX graph: raw float32 N×C×H×W in contract units → probabilities N×classes.

In the graph: unit scaling, clipping, invalid pixels, channel replication, mean/std (the
InputNormalizer), every member with BatchNorm folded, the softmaxes and the ζ-weighted sum
with ζ as constants. Traced with torch's TorchScript-based exporter (dynamo=False), then
simplified (onnxslim or onnxsim, where installed), optionally converted to fp16 with fp32
input and output, and checked with onnx.checker (full check)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import onnx
import torch

from socket_edge.errors import MissingDependencyError, UsageError
from socket_edge.export.fold import graph_ready
from socket_edge.modelfile import INPUT_NAME, OUTPUT_NAME, PREFIX, BatchSpec
from socket_edge.models.ensemble import Ensemble

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax over one axis (opset 13 semantics)
MAX_OPSET = 20  # the newest the TorchScript-based exporter writes
NORMALIZER_SCOPE = "/input/"  # node names of the InputNormalizer: kept in fp32 by the fp16 conversion


@dataclass(frozen=True)
class Graph:
    """An exported graph and what was done to it."""

    proto: onnx.ModelProto
    batchnorm_folded: int
    simplified_with: str | None


def check_opset(opset: int) -> None:
    """Refuse an opset the exporter cannot write."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError(f"--opset {opset} is not supported; use {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")


def trace(model: Ensemble, *, opset: int = DEFAULT_OPSET, batch: BatchSpec = BatchSpec()) -> Graph:
    """Fold, trace and simplify the ensemble into an fp32 ONNX graph (no metadata yet)."""
    check_opset(opset)
    folded, count = graph_ready(model)
    example = torch.zeros((batch.opt, *model.contract.input_shape), dtype=torch.float32)
    dynamic = None if batch.fixed else {INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(folded, (example,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=dynamic, do_constant_folding=True)
    proto, tool = simplify(onnx.load_from_string(buffer.getvalue()))
    return Graph(proto, count, tool)


def simplify(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """onnxslim, else onnxsim, else the graph as it is; returns the tool used (None: not simplified)."""
    try:
        import onnxslim
    except ImportError:
        onnxslim = None
    if onnxslim is not None:
        return onnxslim.slim(proto), "onnxslim"
    try:
        import onnxsim
    except ImportError:
        return proto, None
    simplified, ok = onnxsim.simplify(proto)
    return (simplified, "onnxsim") if ok else (proto, None)


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 weights and compute; the input stays float32 (raw sensor values) and so does the
    InputNormalizer (depth in millimetres overflows fp16 past 65504 and loses millimetres past 2048);
    the output stays float32."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise MissingDependencyError(
            f"--fp16 needs onnxconverter-common ({exc}); pip install onnxconverter-common"
        ) from None
    proto = _unshare_initializers(proto, NORMALIZER_SCOPE)
    keep = [node.name for node in proto.graph.node if node.name.startswith(NORMALIZER_SCOPE)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes on constants clamped to the fp16 range
        half = float16.convert_float_to_float16(proto, keep_io_types=True, node_block_list=keep)
    # the converter leaves stale fp32 value_info beside the new fp16 entries of blocked nodes' outputs
    del half.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(half, strict_mode=True)


def _unshare_initializers(proto: onnx.ModelProto, scope: str) -> onnx.ModelProto:
    """A copy in which the nodes of `scope` have their own initializers: a constant they share with
    the rest of the graph (e.g. the 0 of a clip, also used by ReLU6) would otherwise stay fp32 for
    the kept nodes and become a type clash in the fp16 nodes."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    initializers = {t.name: t for t in graph.initializer}
    outside = {name for node in graph.node if not node.name.startswith(scope) for name in node.input}
    for node in graph.node:
        if not node.name.startswith(scope):
            continue
        for i, name in enumerate(node.input):
            if name in initializers and name in outside:
                copy = graph.initializer.add()
                copy.CopyFrom(initializers[name])
                copy.name = f"{name}_{node.name.strip('/').replace('/', '_')}_{i}"
                node.input[i] = copy.name
    return out


def count_ops(proto: onnx.ModelProto, op_type: str) -> int:
    """How many nodes of a type the graph has."""
    return sum(node.op_type == op_type for node in proto.graph.node)


def with_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> onnx.ModelProto:
    """A copy with the socket-edge metadata_props replaced by `props`, checked in full."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    kept = [(p.key, p.value) for p in out.metadata_props if not p.key.startswith(PREFIX)]
    del out.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = out.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(out, full_check=True)
    return out
