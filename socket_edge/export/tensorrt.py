"""TensorRT 10: build a serialized engine from the exported ONNX graph, and run one.

tensorrt is imported inside the functions (it exists only on machines with an NVIDIA GPU and
its libraries); device buffers are torch CUDA tensors, so no pycuda or cuda-python is needed.
NOT RUN on the project's machines (no GPU, no TensorRT): the tests that build and run an
engine skip there with the reason.

The engine file layout (header readable without TensorRT) is in socket_edge.modelfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError, MissingDependencyError, require
from socket_edge.modelfile import INPUT_NAME, OUTPUT_NAME, BatchSpec, ModelInfo, read_engine

MIN_MAJOR = 10
WORKSPACE_BYTES = 1 << 30


def check_available() -> str:
    """The TensorRT version, or one line naming everything that is missing to build an engine here."""
    import torch

    missing = []
    version = None
    try:
        import tensorrt as trt

        version = str(trt.__version__)
        if int(version.split(".")[0]) < MIN_MAJOR:
            missing.append(f"TensorRT {MIN_MAJOR} or newer (found {version})")
    except ImportError:
        missing.append("the tensorrt Python package (pip install 'socket-edge[tensorrt]'; on a Jetson, JetPack's "
                       "python3-libnvinfer)")
    if not torch.cuda.is_available():
        missing.append("an NVIDIA GPU with CUDA (torch sees none here)")
    if missing:
        raise MissingDependencyError(
            f"--format engine needs {' and '.join(missing)}; an engine is built on the GPU that will run it: "
            "export --format onnx here and build the engine on the device"
        )
    return str(version)


def _calibrator(trt, frames: np.ndarray, batch: int):
    """An entropy calibrator (IInt8EntropyCalibrator2) over raw target frames, `batch` at a time."""
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.device = torch.empty((batch, *frames.shape[1:]), dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index + batch > len(frames):
                return None
            self.device.copy_(torch.from_numpy(frames[self.index:self.index + batch]))
            self.index += batch
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return None

        def write_calibration_cache(self, cache: bytes) -> None:
            return None

    return EntropyCalibrator()


def build_engine(onnx_bytes: bytes, input_shape: tuple[int, int, int], batch: BatchSpec, *, fp16: bool = False,
                 calibration: np.ndarray | None = None) -> bytes:
    """Serialized engine of an ONNX graph: an optimisation profile over `batch` (min, opt, max),
    fp16 and/or int8 (entropy calibration on `calibration` frames) where asked."""
    trt = require("tensorrt", "tensorrt")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch always
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ArtifactError(f"TensorRT cannot parse the exported graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    top = batch.max if batch.max is not None else batch.opt
    profile.set_shape(INPUT_NAME, (batch.min, *input_shape), (batch.opt, *input_shape), (top, *input_shape))
    config.add_optimization_profile(profile)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if calibration is not None:
        if len(calibration) < batch.opt:  # one full batch at least: repeat the frames
            calibration = np.resize(calibration, (batch.opt, *calibration.shape[1:]))
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, calibration, batch.opt)
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError("TensorRT could not build the engine; its log above says why")
    return bytes(serialized)


class EngineModel:
    """A socket-edge engine file (or engine bytes plus their header) run with TensorRT: raw float32
    frames in contract units → probabilities, like runtime.onnx_model.OnnxModel."""

    def __init__(self, path: str | Path | None = None, *, engine: bytes | None = None,
                 header: dict[str, str] | None = None) -> None:
        trt = require("tensorrt", "tensorrt")

        if path is not None:
            header, engine = read_engine(path)
        if engine is None or header is None:
            raise ValueError("EngineModel needs a path, or engine bytes and their header")
        self.name = str(path) if path is not None else "the engine"
        self.info = ModelInfo.from_props(header, self.name)
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine)
        if self.engine is None:
            raise ArtifactError(f"{self.name} cannot be loaded by this TensorRT/GPU (engines are specific to both); "
                                "build it again on this device")
        self.context = self.engine.create_execution_context()
        smallest, _, largest = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.min_batch, self.max_batch = int(smallest[0]), int(largest[0])

    @property
    def contract(self) -> InputContract:
        return self.info.contract

    def predict(self, raw: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N×classes) in chunks within the profile's batch range (the last one
        padded up to its minimum)."""
        import torch

        step = max(min(batch_size or self.max_batch, self.max_batch), self.min_batch)
        stream = torch.cuda.current_stream()
        out = []
        for start in range(0, len(raw), step):
            chunk = np.ascontiguousarray(raw[start:start + step], dtype=np.float32)
            n = len(chunk)
            if n < self.min_batch:
                chunk = np.concatenate([chunk, np.zeros((self.min_batch - n, *chunk.shape[1:]), np.float32)])
            x = torch.from_numpy(chunk).cuda()
            self.context.set_input_shape(INPUT_NAME, tuple(x.shape))
            y = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
            self.context.set_tensor_address(OUTPUT_NAME, y.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise ArtifactError(f"TensorRT failed to run {self.name}")
            stream.synchronize()
            out.append(y[:n].cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.contract.class_names)), np.float32)
