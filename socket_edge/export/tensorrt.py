"""TensorRT 10: build a serialized engine from the exported ONNX graph (running one is
socket_edge.backends.engine).

tensorrt is imported inside the functions (it exists only on machines with an NVIDIA GPU and
its libraries); the calibrator's device buffer is a torch CUDA tensor, so no pycuda or
cuda-python is needed. NOT RUN on the project's machines (no GPU, no TensorRT): the tests that
build and run an engine skip there with the reason.

The engine file layout (header readable without TensorRT) is in socket_edge.modelfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socket_edge.errors import ArtifactError, MissingDependencyError, require
from socket_edge.modelfile import INPUT_NAME, BatchSpec

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
