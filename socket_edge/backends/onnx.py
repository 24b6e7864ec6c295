"""The .onnx backend: an exported socket-edge graph in ONNX Runtime, raw float32 frames in,
class probabilities out.

No torch and no `onnx` package: the contract and the rest of the socket-edge metadata, and the
graph's inputs and outputs for `inspect`, are read through ONNX Runtime. The host-side
preprocessing that turns a camera frame or an image file into the `raw` input is
`socket_edge.data.preprocess.prepare`.

    model = OnnxModel("model.onnx", providers="cpu", threads=2)
    probs = model.predict(prepare(frame, model.contract)[None])   # 1×classes
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from socket_edge.backends import Options
from socket_edge.backends.exported import ExportedModel, summary
from socket_edge.errors import ArtifactError, ContractError, MissingDependencyError, UsageError, require
from socket_edge.modelfile import INPUT_NAME, OUTPUT_NAME, ModelInfo
from socket_edge.progress import bar

CPU = "CPUExecutionProvider"
PROVIDER_ALIASES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": CPU}
PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU)  # "auto": the first ones available
SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


TENSORRT = "TensorrtExecutionProvider"


def trt_cache_dir(path: Path) -> Path:
    """Where ONNX Runtime's TensorRT provider keeps the engines and timing cache it builds for a
    model: a folder beside it (MODEL.onnx → MODEL.onnx.trt-cache/), so a device builds once."""
    return path.with_name(path.name + ".trt-cache")


def session_providers(chosen: Sequence[str], path: Path | None, precision: str) -> list:
    """The `providers` argument of an InferenceSession: the TensorRT provider with its engine and
    timing caches in `trt_cache_dir(path)` (none for a graph given as bytes) and fp16 only when
    the graph is fp16 (its input normalisation and output stay fp32 in the graph); the others by
    name."""
    options = {"trt_fp16_enable": "True" if precision == "fp16" else "False"}
    if path is not None:
        cache = str(trt_cache_dir(path))
        options.update(trt_engine_cache_enable="True", trt_engine_cache_path=cache,
                       trt_timing_cache_enable="True", trt_timing_cache_path=cache)
    return [(name, options) if name == TENSORRT else name for name in chosen]


def choose_providers(requested: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """ONNX Runtime providers for a request: None/'auto' (TensorRT, CUDA, CPU as available),
    an alias ('cpu', 'cuda', 'tensorrt'), or provider names in order. CPU stays last as the
    fallback for operators an accelerator lacks."""
    if requested is None or requested == "auto":
        return [p for p in PREFERENCE if p in available] or list(available)
    names = [requested] if isinstance(requested, str) else list(requested)
    chosen = []
    for name in names:
        provider = PROVIDER_ALIASES.get(name, name)
        if provider not in PREFERENCE and not provider.endswith("ExecutionProvider"):
            raise UsageError(f"unknown inference provider {name!r}; use auto, {', '.join(PROVIDER_ALIASES)} "
                             "or an ONNX Runtime provider name")
        chosen.append(provider)
    missing = [p for p in chosen if p not in available]
    if missing:
        raise MissingDependencyError(
            f"ONNX Runtime here has no {', '.join(missing)} (it has {', '.join(available)}); for CUDA or TensorRT "
            "install onnxruntime-gpu instead of onnxruntime (pip install 'socket-edge[gpu]') on a machine with an "
            "NVIDIA GPU"
        )
    if CPU in available and CPU not in chosen:
        chosen.append(CPU)
    return chosen


class OnnxModel(ExportedModel):
    """One exported .onnx file (or its bytes) in an ONNX Runtime session.

    providers: see `choose_providers`. threads: intra-op threads (None: ONNX Runtime's default).
    spinning: idle thread-pool threads busy-wait for the next operator (ONNX Runtime's default).
    False makes them sleep, which leaves the cores to a source whose decoding takes CPU (a
    compressed RealSense recording on 2 cores) at some cost in inference speed otherwise
    (docs/benchmarks.md, run section).
    Refuses, with one line, a file that is not ONNX or carries no socket-edge contract."""

    backend = "onnxruntime"

    def __init__(self, model: str | Path | bytes, *, providers: str | Sequence[str] | None = None,
                 threads: int | None = None, spinning: bool = True, name: str | None = None) -> None:
        ort = require("onnxruntime", "cpu")
        if isinstance(model, bytes):
            self.name = name or "the ONNX graph"
            source: str | bytes = model
        else:
            path = Path(model)
            self.name = name or str(path)
            if not path.is_file():
                raise ArtifactError(f"model file {path} does not exist")
            source = str(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no per-node fallback chatter on stderr
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.spinning = spinning
        for key in SPIN_KEYS:
            options.add_session_config_entry(key, "1" if spinning else "0")
        chosen = choose_providers(providers, ort.get_available_providers())
        if TENSORRT in chosen:  # its options depend on the graph's precision: read the metadata on the CPU first
            precision = self._open(ort, source, options, [CPU]).precision
            chosen = session_providers(chosen, None if isinstance(model, bytes) else Path(model), precision)
        self.info = self._open(ort, source, options, chosen)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [o.name for o in outputs]:
            raise ArtifactError(
                f"{self.name} has inputs {[i.name for i in inputs]} and outputs {[o.name for o in outputs]}; a "
                f"socket-edge graph has input '{INPUT_NAME}' and output '{OUTPUT_NAME}'; export it again"
            )
        self._check_input(inputs[0].shape)
        batch = inputs[0].shape[0]
        self.fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None
        width = next(o for o in outputs if o.name == OUTPUT_NAME).shape[-1]
        self.width_checked = isinstance(width, int)  # else the first prediction's width is checked
        if self.width_checked:
            self._check_width(width)

    def _open(self, ort, source: str | bytes, options, providers: list) -> ModelInfo:
        """Open the session (self.session) and parse the socket-edge metadata; one line for a file
        ONNX Runtime cannot read."""
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for foreign or corrupt files
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{self.name} is not a readable ONNX model ({first})") from None
        return ModelInfo.from_props(self.session.get_modelmeta().custom_metadata_map, self.name)

    def _check_input(self, shape: list) -> None:
        """Refuse a graph whose input (C×H×W, where fixed) is not its contract's raw frame shape."""
        expected = self.contract.input_shape
        fixed = [(d, e) for d, e in zip(shape[1:], expected) if isinstance(d, int)]
        if len(shape) != 4 or any(d != e for d, e in fixed):
            got = "×".join(str(d) if isinstance(d, int) else "N" for d in shape)
            raise ArtifactError(f"{self.name} takes input {got} but its contract describes N×"
                                f"{'×'.join(map(str, expected))} frames; the file was edited or damaged: export it "
                                "again")

    def _check_width(self, width: int) -> None:
        """Refuse a graph whose output has another width than its contract has class names."""
        names = self.contract.class_names
        if width != len(names):
            raise ArtifactError(f"{self.name} outputs {width} class probabilities but its contract names "
                                f"{len(names)} classes ({', '.join(names)}); the file was edited or damaged: "
                                "export it again")

    @property
    def providers(self) -> list[str]:
        """The providers the session really uses, in order."""
        return list(self.session.get_providers())

    @property
    def detail(self) -> str:
        """The providers in use, short: "CPU", "TensorRT,CUDA,CPU"."""
        return ",".join(p.replace("ExecutionProvider", "") for p in self.providers)

    def predict(self, raw: np.ndarray, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Class probabilities (N×classes, float32) of raw frames (N×C×H×W or one C×H×W, in contract
        units as `prepare` returns them). A graph exported with a fixed batch is fed in chunks of
        that size (the last one padded); otherwise in chunks of `batch_size` (default: all at once)."""
        raw = np.asarray(raw)
        if raw.ndim == 3:
            raw = raw[None]
        if raw.ndim != 4 or raw.shape[1:] != self.contract.input_shape:
            expected = "×".join(str(v) for v in ("N", *self.contract.input_shape))
            got = "×".join(map(str, raw.shape))
            raise ContractError(f"{self.name} takes raw frames of shape {expected}, got {got}")
        raw = np.ascontiguousarray(raw, dtype=np.float32)
        step = self.fixed_batch or batch_size or max(len(raw), 1)
        out = []
        for start in bar(range(0, len(raw), step), desc="predict", enabled=progress, leave=False):
            chunk = raw[start:start + step]
            n = len(chunk)
            if self.fixed_batch and n < self.fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((self.fixed_batch - n, *chunk.shape[1:]), np.float32)])
            probs = self.session.run([OUTPUT_NAME], {INPUT_NAME: chunk})[0]
            if not self.width_checked:
                self._check_width(probs.shape[-1])
                self.width_checked = True
            out.append(np.asarray(probs[:n], dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, len(self.contract.class_names)), np.float32)


def open_model(path: Path, options: Options) -> OnnxModel:
    """The registry's entry (socket_edge.backends.open_model) for .onnx files; without providers,
    a device (cpu, cuda) names the provider, as `eval --device` does for every backend."""
    providers = options.providers or (None if options.device == "auto" else options.device)
    return OnnxModel(path, providers=providers, threads=options.threads, spinning=options.spinning)


def _tensor(node) -> dict:
    """An ONNX Runtime NodeArg as name, numpy dtype name and shape (symbolic axes by name)."""
    element = node.type.removeprefix("tensor(").removesuffix(")")
    dtype = {"float": "float32", "double": "float64"}.get(element, element)
    return {"name": node.name, "dtype": dtype, "shape": [d if d is not None else "?" for d in node.shape]}


def summarize(path: Path) -> dict:
    """`inspect`'s summary of an .onnx, read through an ONNX Runtime CPU session; the opset is the
    one the export recorded."""
    model = OnnxModel(path, providers="cpu", threads=1)
    opset = model.info.provenance.get("export", {}).get("opset")
    graph = {"opset": opset, "inputs": [_tensor(n) for n in model.session.get_inputs()],
             "outputs": [_tensor(n) for n in model.session.get_outputs()]}
    return summary(path, model.info, f"onnx opset {opset if opset is not None else '?'}, {model.info.precision}", graph)
