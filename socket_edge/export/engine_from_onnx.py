"""`socket-edge export MODEL.onnx --format engine`: a TensorRT plan built from a graph that `export`
wrote, on the device that will run it, without torch and without the `onnx` package (a Jetson's
runtime install). The graph's bytes go to TensorRT's parser as they are, so the engine has the
graph's precision: export the .pt on the workstation with --fp16, or with --int8 --int8-scheme
tensorrt, and build from that .onnx. The contract and the rest of the metadata are read through
ONNX Runtime and go into the engine's sidecar; the engine's parity is measured against the graph
in ONNX Runtime on the CPU."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from socket_edge.backends.engine import EngineModel
from socket_edge.backends.onnx import OnnxModel
from socket_edge.errors import UsageError
from socket_edge.export import parity, tensorrt
from socket_edge.modelfile import KEY_COMPUTE, KEY_GPU, KEY_TENSORRT, BatchSpec, write_engine

DEFAULT_BATCH = BatchSpec(1, 1, 8)  # the engine's profile for a graph of any batch size, when none is given
ONLY_FROM_PT = ("--opset", "--fp16", "--int8", "--calib", "--calib-frames", "--calib-method", "--int8-scheme",
                "--prune-zeta")  # they change the graph: made from the .pt on the workstation


def engine_batch(graph: BatchSpec, batch: int | None, dynamic_batch: tuple[int, int, int] | None) -> BatchSpec:
    """The engine's batch: a fixed-batch graph's own (any other is refused); within a graph of any
    batch size, --batch N, --dynamic-batch MIN:OPT:MAX or 1:1:8."""
    if graph.fixed:
        if (batch is not None and batch != graph.min) or dynamic_batch is not None:
            raise UsageError(f"the graph was exported with a fixed batch of {graph.min}; build the engine without "
                             "--batch/--dynamic-batch, or export the .pt again with the batch you want")
        return graph
    spec = BatchSpec(batch, batch, batch) if batch is not None else \
        BatchSpec(*dynamic_batch) if dynamic_batch is not None else DEFAULT_BATCH
    if spec.min < graph.min:
        raise UsageError(f"the graph takes batches of at least {graph.min}; ask for no fewer")
    return spec


def refuse_graph_options(given: dict[str, object]) -> None:
    """One line for an option that changes the graph, which only an export of the .pt can do."""
    for flag in ONLY_FROM_PT:
        if given.get(flag) not in (None, False):
            raise UsageError(f"{flag} changes the graph: export the .pt with it on the workstation, then build the "
                             "engine from that .onnx (an engine has the precision of the graph it is built from)")


def build(model_path: str | Path, out: Path, *, batch: int | None = None,
          dynamic_batch: tuple[int, int, int] | None = None, check_data: str | Path | None = None,
          progress: bool = False) -> dict:
    """Build `out` (.engine and its sidecar) from the exported graph `model_path`; returns the same
    summary as exporter.export, its parity measured against ONNX Runtime on the CPU."""
    started = time.time()
    model_path = Path(model_path)
    graph = OnnxModel(model_path, providers="cpu")
    info = graph.info
    export = info.provenance.get("export", {})
    if info.precision == "int8" and (export.get("int8") or {}).get("scheme") != "tensorrt":
        raise UsageError(f"{model_path} is an int8 graph for ONNX Runtime's CPU (uint8 activations), which TensorRT "
                         "cannot build; export the .pt with --int8 --int8-scheme tensorrt and build from that")
    spec = engine_batch(info.batch, batch, dynamic_batch)
    version, gpu = tensorrt.check_available(model_path.name)
    check = parity.check_frames(info.contract, check_data, progress=progress)
    reference = graph.predict(check.frames, 32)
    plan = tensorrt.build_engine(model_path.read_bytes(), info.contract.input_shape, spec,
                                 tensorrt.timing_cache_path(out))
    built = {"from": model_path.name, "batch": spec.to_dict(), "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    engine_info = dataclasses.replace(info, batch=spec, provenance={**info.provenance, "engine": built})
    props = {**engine_info.to_props(), KEY_TENSORRT: version, KEY_GPU: gpu.name, KEY_COMPUTE: gpu.compute}
    result = parity.measure(EngineModel(plan=plan, props=props), f"tensorrt {info.precision}", reference, check,
                            info.contract.class_names)
    built["parity"] = result  # recorded in the sidecar's provenance with the rest of the build
    props = {**props, **dataclasses.replace(engine_info, provenance={**info.provenance, "engine": built}).to_props()}
    write_engine(out, props, plan)
    return {
        "file": str(out), "format": "engine", "size_bytes": out.stat().st_size, "precision": info.precision,
        "opset": export.get("opset"), "batch": spec.describe(),
        "members": [{"arch": m["arch"], "zeta": z} for m, z in zip(info.members, info.zeta)],
        "batchnorm_folded": export.get("batchnorm_folded", 0), "batchnorm_left": export.get("batchnorm_left", 0),
        "simplified_with": export.get("simplified_with"), "parity": [result], "prune": None,
        "int8": export.get("int8"), "reference": f"{model_path.name} in ONNX Runtime",
        "seconds": round(time.time() - started, 2),
    }
