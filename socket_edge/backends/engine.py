"""The .engine backend: a socket-edge engine file (header + serialized TensorRT plan) run with
TensorRT. tensorrt is imported when an engine is opened; its device buffers are torch CUDA
tensors for now, so running an engine also needs torch (the one import of torch outside
backends/pt.py, checked with one line when an engine is opened). `inspect` reads the header
alone, without TensorRT or torch. Building engines is socket_edge.export.tensorrt.
NOT RUN on the project's machines (no GPU, no TensorRT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socket_edge.backends import Options
from socket_edge.backends.exported import ExportedModel, summary
from socket_edge.errors import ArtifactError, require
from socket_edge.modelfile import INPUT_NAME, KEY_TENSORRT, OUTPUT_NAME, ModelInfo, read_engine, read_engine_header
from socket_edge.progress import bar


class EngineModel(ExportedModel):
    """A socket-edge engine file (or engine bytes plus their header) run with TensorRT: raw float32
    frames in contract units → probabilities, like backends.onnx.OnnxModel."""

    backend = "tensorrt"
    detail = "engine"

    def __init__(self, path: str | Path | None = None, *, engine: bytes | None = None,
                 header: dict[str, str] | None = None) -> None:
        trt = require("tensorrt", "tensorrt")
        require("torch", "train", needed_by="running a TensorRT engine (its CUDA buffers)")
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

    def predict(self, raw: np.ndarray, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Class probabilities (N×classes) in chunks within the profile's batch range (the last one
        padded up to its minimum)."""
        import torch

        step = max(min(batch_size or self.max_batch, self.max_batch), self.min_batch)
        stream = torch.cuda.current_stream()
        out = []
        for start in bar(range(0, len(raw), step), desc="predict", enabled=progress, leave=False):
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


def open_model(path: Path, options: Options) -> EngineModel:
    """The registry's entry (socket_edge.backends.open_model) for .engine files."""
    return EngineModel(path)


def summarize(path: Path) -> dict:
    """`inspect`'s summary of an engine file, from its header (no TensorRT needed)."""
    header, _ = read_engine_header(path)
    info = ModelInfo.from_props(header, str(path))
    c, version = info.contract, header.get(KEY_TENSORRT, "?")
    graph = {"tensorrt": version,
             "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": ["N", *c.input_shape]}],
             "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(c.class_names)]}]}
    return summary(path, info, f"TensorRT {version} engine, {info.precision}", graph)
