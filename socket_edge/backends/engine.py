"""The .engine backend: a plain TensorRT plan (`MODEL.engine`) and its sidecar (`MODEL.engine.json`,
socket_edge.modelfile) run with TensorRT and cuda-python's runtime API (`cuda-bindings`); no torch.

Per model, allocated once: the input and output device buffers for the profile's largest batch,
one pinned host staging buffer (the input goes up from it, the output comes back into it) and a
dedicated CUDA stream. Mapped (zero-copy) host memory on integrated GPUs such as a Jetson's is
not used: the pinned buffer plus two copies works on every GPU and is unmeasured either way.
tensorrt and cuda-bindings are imported when an engine is opened; `inspect` reads the sidecar
alone. Building engines is socket_edge.export.tensorrt.
NOT RUN on the project's machines (no GPU, no TensorRT): the tests that need them skip there."""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from socket_edge.backends import Options
from socket_edge.backends.exported import ExportedModel, summary
from socket_edge.errors import ArtifactError, require
from socket_edge.modelfile import (INPUT_NAME, KEY_COMPUTE, KEY_GPU, KEY_SOURCE, KEY_TENSORRT, OUTPUT_NAME, ModelInfo,
                                   read_sidecar)
from socket_edge.progress import bar


@dataclass(frozen=True)
class Gpu:
    """The GPU an engine is built for, or runs on, as CUDA names it."""

    name: str
    compute: str  # compute capability, "8.7"


def cuda_runtime() -> ModuleType:
    """cuda-python's runtime API (cudart), or one line naming the extra."""
    return require("cuda.bindings.runtime", "tensorrt", needed_by="a TensorRT engine (its CUDA buffers)")


def cuda_call(cudart: ModuleType, what: str, result: tuple) -> object:
    """The value a cudart call returns, or one ArtifactError line with CUDA's reason."""
    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(error)
        raise ArtifactError(f"CUDA {what} failed: {text.decode()} ({error.name}); check the GPU and its driver "
                            "(nvidia-smi, or tegrastats on a Jetson)")
    return values[0] if len(values) == 1 else tuple(values)


def current_gpu(cudart: ModuleType) -> Gpu:
    """The current CUDA device's name and compute capability."""
    device = cuda_call(cudart, "cudaGetDevice", cudart.cudaGetDevice())
    props = cuda_call(cudart, "cudaGetDeviceProperties", cudart.cudaGetDeviceProperties(device))
    return Gpu(bytes(props.name).split(b"\0")[0].decode(errors="replace"), f"{props.major}.{props.minor}")


def refuse_foreign(props: dict[str, str], name: str, tensorrt: str, gpu: Gpu) -> None:
    """Refuse in one line an engine whose sidecar says it was built by another TensorRT version or
    for another GPU than `tensorrt` and `gpu` (a plan runs only where it was built)."""
    built = Gpu(props.get(KEY_GPU, "an unrecorded GPU"), props.get(KEY_COMPUTE, "?"))
    version = props.get(KEY_TENSORRT, "an unrecorded version")
    if version == tensorrt and built == gpu:
        return
    source = props.get(KEY_SOURCE) or "MODEL.pt"
    raise ArtifactError(
        f"{name} was built by TensorRT {version} for {built.name} (compute {built.compute}); this device has TensorRT "
        f"{tensorrt} and {gpu.name} (compute {gpu.compute}), and a plan runs only where it was built: rebuild it on "
        f"this device with: socket-edge export {source} --format engine"
    )


def _release(cudart: ModuleType, stream: object, device: list[int], host: int) -> None:
    """Free what EngineModel allocated (at garbage collection; errors ignored: nothing can act on them)."""
    for pointer in device:
        cudart.cudaFree(pointer)
    cudart.cudaFreeHost(host)
    cudart.cudaStreamDestroy(stream)


class EngineModel(ExportedModel):
    """A TensorRT plan and its sidecar (or the plan's bytes and its string map) run with TensorRT:
    raw float32 frames in contract units → probabilities, like backends.onnx.OnnxModel."""

    backend = "tensorrt"
    detail = "engine"

    def __init__(self, path: str | Path | None = None, *, plan: bytes | None = None,
                 props: dict[str, str] | None = None) -> None:
        trt = require("tensorrt", "tensorrt")
        cudart = cuda_runtime()
        if path is not None:
            props, plan = read_sidecar(path), Path(path).read_bytes()
        if plan is None or props is None:
            raise ValueError("EngineModel needs a path, or a plan and its string map")
        self.name = str(path) if path is not None else "the engine"
        self.info = ModelInfo.from_props(props, self.name)
        refuse_foreign(props, self.name, str(trt.__version__), current_gpu(cudart))
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
        if self.engine is None:
            raise ArtifactError(f"{self.name} cannot be loaded by this TensorRT (its log above says why); rebuild it "
                                "on this device with: socket-edge export MODEL.pt --format engine")
        self.context = self.engine.create_execution_context()
        smallest, _, largest = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.min_batch, self.max_batch = int(smallest[0]), int(largest[0])
        dtypes = {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16}
        out_type = self.engine.get_tensor_dtype(OUTPUT_NAME)
        if out_type not in dtypes or self.engine.get_tensor_dtype(INPUT_NAME) != trt.DataType.FLOAT:
            raise ArtifactError(f"{self.name} takes {self.engine.get_tensor_dtype(INPUT_NAME)} and gives {out_type}; "
                                "a socket-edge engine takes float32 and gives float32 or float16: rebuild it")
        self.out_dtype = np.dtype(dtypes[out_type])
        frame = int(np.prod(self.contract.input_shape)) * 4
        classes = len(self.contract.class_names) * self.out_dtype.itemsize
        self.cudart = cudart
        self.stream = cuda_call(cudart, "cudaStreamCreate", cudart.cudaStreamCreate())
        self.host_bytes = self.max_batch * max(frame, classes)
        self.host = cuda_call(cudart, "cudaMallocHost", cudart.cudaMallocHost(self.host_bytes))
        self.input = cuda_call(cudart, "cudaMalloc", cudart.cudaMalloc(self.max_batch * frame))
        self.output = cuda_call(cudart, "cudaMalloc", cudart.cudaMalloc(self.max_batch * classes))
        weakref.finalize(self, _release, cudart, self.stream, [self.input, self.output], self.host)
        self.staging = np.ctypeslib.as_array((ctypes.c_uint8 * self.host_bytes).from_address(self.host))
        if not (self.context.set_tensor_address(INPUT_NAME, self.input)
                and self.context.set_tensor_address(OUTPUT_NAME, self.output)):
            raise ArtifactError(f"TensorRT refused the buffers of {self.name}; rebuild it on this device")

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        """Probabilities of one chunk of min_batch..max_batch frames: up through the pinned buffer,
        run on the model's stream, back into the pinned buffer."""
        cudart, kinds = self.cudart, self.cudart.cudaMemcpyKind
        if not self.context.set_input_shape(INPUT_NAME, chunk.shape):
            raise ArtifactError(f"{self.name} does not take input of shape {chunk.shape} (batch range "
                                f"{self.min_batch}..{self.max_batch})")
        shape = tuple(self.context.get_tensor_shape(OUTPUT_NAME))
        out_bytes = int(np.prod(shape)) * self.out_dtype.itemsize
        self.staging[:chunk.nbytes] = chunk.reshape(-1).view(np.uint8)
        cuda_call(cudart, "cudaMemcpyAsync (to the GPU)", cudart.cudaMemcpyAsync(
            self.input, self.host, chunk.nbytes, kinds.cudaMemcpyHostToDevice, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise ArtifactError(f"TensorRT failed to run {self.name}; its log above says why")
        cuda_call(cudart, "cudaMemcpyAsync (from the GPU)", cudart.cudaMemcpyAsync(
            self.host, self.output, out_bytes, kinds.cudaMemcpyDeviceToHost, self.stream))
        cuda_call(cudart, "cudaStreamSynchronize", cudart.cudaStreamSynchronize(self.stream))
        return self.staging[:out_bytes].view(self.out_dtype).reshape(shape).astype(np.float32)

    def predict(self, raw: np.ndarray, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Class probabilities (N×classes) in chunks within the profile's batch range (the last one
        padded up to its minimum)."""
        step = max(min(batch_size or self.max_batch, self.max_batch), self.min_batch)
        out = []
        for start in bar(range(0, len(raw), step), desc="predict", enabled=progress, leave=False):
            chunk = np.ascontiguousarray(raw[start:start + step], dtype=np.float32)
            n = len(chunk)
            if n < self.min_batch:
                chunk = np.concatenate([chunk, np.zeros((self.min_batch - n, *chunk.shape[1:]), np.float32)])
            out.append(self._run(chunk)[:n])
        return np.concatenate(out) if out else np.zeros((0, len(self.contract.class_names)), np.float32)


def open_model(path: Path, options: Options) -> EngineModel:
    """The registry's entry (socket_edge.backends.open_model) for .engine files."""
    return EngineModel(path)


def summarize(path: Path) -> dict:
    """`inspect`'s summary of an engine, from its sidecar (no TensorRT needed)."""
    props = read_sidecar(path)
    info = ModelInfo.from_props(props, str(path))
    c, version = info.contract, props.get(KEY_TENSORRT, "?")
    gpu = Gpu(props.get(KEY_GPU, "?"), props.get(KEY_COMPUTE, "?"))
    graph = {"tensorrt": version, "gpu": gpu.name, "compute": gpu.compute,
             "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": ["N", *c.input_shape]}],
             "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(c.class_names)]}]}
    return summary(path, info, f"TensorRT {version} engine for {gpu.name} (compute {gpu.compute}), {info.precision}",
                   graph)
