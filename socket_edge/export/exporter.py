"""`socket-edge export`: a model artifact (.pt) → one file that computes
Σ_k ζ_k softmax(g_k(f_k(normalise(x)))) end to end, with its contract inside.

Steps: validate the options against the formats table; load the artifact; optionally prune
members with small ζ; trace the folded ensemble to ONNX; check parity against PyTorch on
real or generated frames; write the ONNX (or build the TensorRT plan from it and write the plan
with its sidecar) to a temporary file renamed into place, with the contract, ζ, members and
provenance inside (the plan: in its sidecar)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from socket_edge.backends.engine import EngineModel
from socket_edge.backends.onnx import OnnxModel
from socket_edge.errors import ArtifactError, UsageError
from socket_edge.export import formats, onnx_graph, parity, quantize
from socket_edge.export.onnx_graph import DEFAULT_OPSET
from socket_edge import atomic
from socket_edge.modelfile import KEY_COMPUTE, KEY_GPU, KEY_TENSORRT, BatchSpec, ModelInfo, write_engine
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble

DEFAULT_ENGINE_BATCH = BatchSpec(1, 1, 8)  # the profile of an engine when no batch option is given


def batch_spec(fmt: formats.Format, batch: int | None, dynamic_batch: tuple[int, int, int] | None) -> BatchSpec:
    """--batch N (fixed), --dynamic-batch MIN:OPT:MAX, or the format's default (ONNX: any size)."""
    if batch is not None:
        return BatchSpec(batch, batch, batch)
    if dynamic_batch is not None:
        return BatchSpec(*dynamic_batch)
    return DEFAULT_ENGINE_BATCH if fmt.name == "engine" else BatchSpec(1, 1, None)


def prune(model: Ensemble, threshold: float) -> tuple[Ensemble, list[int]]:
    """The ensemble without the members whose ζ < threshold (ζ renormalised), and the dropped indices."""
    zeta = model.zeta.tolist()
    kept = [i for i, z in enumerate(zeta) if z >= threshold]
    if not kept:
        shown = ", ".join(f"{z:.3f}" for z in zeta)
        raise UsageError(f"--prune-zeta {threshold:g} would drop every member (ζ = {shown}); "
                         f"use a threshold at most {max(zeta):.3f}")
    pruned = Ensemble(model.contract, [model.members[i] for i in kept], model.zeta[kept]).eval()
    return pruned, [i for i in range(len(zeta)) if i not in kept]


def _torch_probs(model: Ensemble, frames: np.ndarray) -> np.ndarray:
    from socket_edge.models.torch_utils import predict

    return predict(model, frames, torch.device("cpu"), batch_size=32)


def _prune_report(model: Ensemble, pruned: Ensemble, dropped: list[int], threshold: float,
                  check: parity.CheckFrames, before: np.ndarray, after: np.ndarray) -> dict:
    return {
        "threshold": threshold,
        "dropped": [{"index": i, "arch": model.members[i].config.arch, "zeta": float(model.zeta[i])} for i in dropped],
        "zeta_before": [float(z) for z in model.zeta],
        "zeta_after": [float(z) for z in pruned.zeta],
        "frames": check.source,
        "accuracy_before": parity.accuracy(before, check, model.contract.class_names),
        "accuracy_after": parity.accuracy(after, check, pruned.contract.class_names),
        "agreement": parity.compare(before, after),
    }


def _onnx_runner(proto, precision: str) -> OnnxModel:
    """The graph in ONNX Runtime on CPU: the backend that eval, inspect, run and bench use."""
    return OnnxModel(proto.SerializeToString(), providers="cpu", name=f"the exported {precision} graph")


def _versions() -> dict:
    import onnx

    found = {"onnx": onnx.__version__}
    for name in ("onnxruntime", "onnxslim", "onnxsim", "onnxconverter_common"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    return found


def default_out(model_path: str | Path, fmt: str) -> Path:
    """The file an export writes when no --out is given: the model's name with the format's suffix."""
    return Path(model_path).with_suffix(formats.get_format(fmt).suffix)


def export(model_path: str | Path, fmt: str = "onnx", *, out: str | Path | None = None, opset: int | None = None,
           batch: int | None = None, dynamic_batch: tuple[int, int, int] | None = None, fp16: bool = False,
           int8: bool = False, calib: str | Path | None = None, calib_frames: int | None = None,
           calib_method: str | None = None, int8_scheme: str | None = None, prune_zeta: float | None = None,
           check_data: str | Path | None = None, progress: bool = False, command: str | None = None) -> dict:
    """Export a model artifact; returns a summary (file, size, members, ζ, parity, pruning, seconds).
    int8: a Q/DQ graph calibrated on `calib` (`calib_frames` images, `calib_method`, activations in
    `int8_scheme`: "cpu" for an ONNX graph by default, always "tensorrt" for an engine).
    `command`: the command line, for the provenance."""
    started = time.time()
    form = formats.validate(fmt, {
        "--opset": opset, "--batch": batch, "--dynamic-batch": dynamic_batch, "--fp16": fp16, "--int8": int8,
        "--calib": calib, "--calib-frames": calib_frames, "--calib-method": calib_method,
        "--int8-scheme": int8_scheme, "--prune-zeta": prune_zeta, "--check-data": check_data,
    })
    built_by = None
    if form.name == "engine":
        from socket_edge.export import tensorrt

        built_by = tensorrt.check_available()
    opset = opset or DEFAULT_OPSET
    onnx_graph.check_opset(opset)
    model_path = Path(model_path)
    out = Path(out) if out is not None else default_out(model_path, fmt)
    if out.suffix != form.suffix:
        raise UsageError(f"--out {out} does not end in {form.suffix}, the {form.name} format's suffix "
                         "(eval, inspect and run pick the backend by suffix)")
    spec = batch_spec(form, batch, dynamic_batch)
    model, data = artifact.load(model_path)
    calibration = None
    if int8:
        calibration = quantize.calibration_frames(model.contract, calib, calib_frames or quantize.DEFAULT_FRAMES,
                                                  progress=progress)
    check = parity.check_frames(model.contract, check_data, progress=progress)
    reference = _torch_probs(model, check.frames)
    dropped: list[int] = []
    prune_report = None
    if prune_zeta is not None:
        pruned, dropped = prune(model, prune_zeta)
        after = _torch_probs(pruned, check.frames)
        prune_report = _prune_report(model, pruned, dropped, prune_zeta, check, reference, after)
        model, reference = pruned, after
    kept = [i for i in range(len(data["members"])) if i not in dropped]
    graph = onnx_graph.trace(model, opset=opset, batch=spec)
    precision = "int8" if int8 else "fp16" if fp16 else "fp32"
    info = ModelInfo(
        contract=model.contract, zeta=tuple(float(z) for z in model.zeta),
        members=tuple(artifact.member_summary(data["members"][i]) for i in kept), provenance={},
        source=model_path.name, precision=precision, batch=spec,
    )
    fp32 = onnx_graph.with_metadata(graph.proto, dataclasses.replace(info, precision="fp32").to_props())
    names = model.contract.class_names
    results = [parity.measure(_onnx_runner(fp32, "fp32"), "fp32", reference, check, names)]
    final = fp32
    int8_report = None
    if fp16:
        final = onnx_graph.to_fp16(fp32)
        results.append(parity.measure(_onnx_runner(final, "fp16"), "fp16", reference, check, names))
    if calibration is not None:
        scheme = "tensorrt" if form.name == "engine" else int8_scheme or "cpu"
        method = calib_method or quantize.DEFAULT_METHOD
        final = quantize.to_int8(fp32, calibration.frames, method, scheme)
        int8_report = {"calibration": {**calibration.summary, "method": method}, "scheme": scheme,
                       "float_nodes": len(quantize.float_nodes(fp32))}
        results.append(parity.measure(_onnx_runner(final, "int8"), "int8", reference, check, names))
    plan: bytes | None = None
    engine_props: dict[str, str] = {}  # the engine's TensorRT version and GPU, for its sidecar
    if built_by is not None:
        from socket_edge.export import tensorrt

        version, gpu = built_by
        engine_props = {KEY_TENSORRT: version, KEY_GPU: gpu.name, KEY_COMPUTE: gpu.compute}
        plan = tensorrt.build_engine(final.SerializeToString(), model.contract.input_shape, spec,
                                     tensorrt.timing_cache_path(out))
        runner = EngineModel(plan=plan, props={**info.to_props(), **engine_props})
        results.append(parity.measure(runner, f"tensorrt {precision}", reference, check, names))

    left = onnx_graph.count_ops(graph.proto, "BatchNormalization")
    block = artifact.provenance(
        command, stage="export", format=form.name, kind=data["kind"], opset=opset, precision=precision,
        batch=spec.to_dict(), batchnorm_folded=graph.batchnorm_folded, batchnorm_left=left,
        simplified_with=graph.simplified_with, parity=results, prune=prune_report, int8=int8_report,
        tools=_versions(),
    )
    props = dataclasses.replace(info, provenance={"export": block, "source": data["provenance"]}).to_props()
    if plan is None:
        atomic.write_bytes(out, [onnx_graph.with_metadata(final, props).SerializeToString()])
    else:
        write_engine(out, {**props, **engine_props}, plan)
    return {
        "file": str(out), "format": form.name, "size_bytes": out.stat().st_size, "precision": precision,
        "opset": opset, "batch": spec.describe(),
        "members": [{"arch": m["arch"], "zeta": z} for m, z in zip(info.members, info.zeta)],
        "batchnorm_folded": graph.batchnorm_folded, "batchnorm_left": left, "simplified_with": graph.simplified_with,
        "parity": results, "prune": prune_report, "int8": int8_report, "seconds": round(time.time() - started, 2),
    }
