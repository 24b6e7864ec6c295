"""TensorRT 10/11: build a plan from the exported ONNX graph (running one is
socket_edge.backends.engine).

A strongly typed network: each tensor keeps the type the ONNX graph gives it, so an fp16 engine
is built from the fp16 graph `export --fp16` writes (input normalisation and output in float32),
an int8 engine from the Q/DQ graph `export --int8` writes in its symmetric "tensorrt" scheme
(explicit quantisation: int8 where the graph has Q/DQ pairs, float32 elsewhere), and no builder
precision flag or calibrator is used (TensorRT 10 deprecates them, 11 removes them).
A timing cache beside the engine (`MODEL.engine.timing.cache`) makes a rebuild on the same
device fast. tensorrt and cuda-bindings are imported inside the functions (they exist only on
machines with an NVIDIA GPU and its libraries). NOT RUN on the project's machines (no GPU, no
TensorRT): the tests that build an engine skip there with the reason."""

from __future__ import annotations

from pathlib import Path

from socket_edge import atomic
from socket_edge.backends.engine import Gpu, cuda_runtime, current_gpu
from socket_edge.errors import ArtifactError, MissingDependencyError, install_line, require
from socket_edge.modelfile import INPUT_NAME, BatchSpec

MIN_MAJOR = 10
WORKSPACE_BYTES = 1 << 30


def check_available(graph: str | None = None) -> tuple[str, Gpu]:
    """The TensorRT version and the GPU an engine would be built for, or one line naming everything
    that is missing to build an engine here (`graph`: the exported .onnx it would be built from)."""
    missing = []
    version = None
    try:
        import tensorrt as trt

        version = str(trt.__version__)
        if int(version.split(".")[0]) < MIN_MAJOR:
            missing.append(f"TensorRT {MIN_MAJOR} or newer (found {version})")
    except ImportError:
        missing.append(f"the tensorrt Python package ({install_line('tensorrt')}; on JetPack 6, apt's "
                       "python3-libnvinfer)")
    gpu = None
    try:
        gpu = current_gpu(cuda_runtime())
    except MissingDependencyError:
        missing.append(f"cuda-python ({install_line('tensorrt')})")
    except ArtifactError:
        missing.append("an NVIDIA GPU with CUDA (CUDA sees none here)")
    if missing or version is None or gpu is None:
        where = (f"run this on the device that will run {graph}" if graph else
                 "export --format onnx here and build the engine on the device with "
                 "`socket-edge export MODEL.onnx --format engine` (no torch needed there)")
        raise MissingDependencyError(
            f"--format engine needs {' and '.join(missing)}; an engine is built on the GPU that will run it: {where}"
        )
    return version, gpu


def timing_cache_path(plan: str | Path) -> Path:
    """The timing cache beside an engine: `MODEL.engine` → `MODEL.engine.timing.cache`."""
    plan = Path(plan)
    return plan.with_name(plan.name + ".timing.cache")


def build_engine(onnx_bytes: bytes, input_shape: tuple[int, int, int], batch: BatchSpec, timing_cache: Path) -> bytes:
    """The serialized plan of an ONNX graph as a strongly typed network (its precision is the
    graph's), with an optimisation profile over `batch` (min, opt, max). `timing_cache` is read
    when present (one from another device or TensorRT is set aside) and written after the build."""
    trt = require("tensorrt", "tensorrt")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
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
    cached = timing_cache.read_bytes() if timing_cache.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False):
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)  # another device's cache
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError("TensorRT could not build the engine; its log above says why")
    atomic.write_bytes(timing_cache, [bytes(config.get_timing_cache().serialize())])
    return bytes(serialized)
