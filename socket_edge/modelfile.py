"""What an exported model file carries besides its graph: the socket-edge metadata keys
(ONNX `metadata_props`, the engine header) and the engine file layout.

Standard library only, so that the runtime (no torch, no `onnx` package) and `inspect`
(no TensorRT) read the same definitions the exporter writes.

ONNX: each key below is one `metadata_props` entry whose value is a string (JSON for the
structured ones). Engine file (`.engine`):

    b"SEENGINE" | uint32 little-endian header length | UTF-8 JSON header | serialized TensorRT engine

The JSON header is the same string map as the ONNX metadata plus the TensorRT version, so
one parser (`ModelInfo.from_props`) reads both.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from socket_edge import atomic
from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError, SocketEdgeError, UsageError

FORMAT_VERSION = 1
PREFIX = "socket_edge."
KEY_FORMAT_VERSION = PREFIX + "format_version"
KEY_CONTRACT = PREFIX + "contract"      # InputContract.to_json()
KEY_ZETA = PREFIX + "zeta"              # JSON list, sums to 1
KEY_MEMBERS = PREFIX + "members"        # JSON list of member configs (+ "parameters")
KEY_PROVENANCE = PREFIX + "provenance"  # JSON: {"export": {...}, "source": the .pt's provenance}
KEY_SOURCE = PREFIX + "source"          # the .pt file name
KEY_PRECISION = PREFIX + "precision"    # "fp32", "fp16", "int8"
KEY_BATCH = PREFIX + "batch"            # JSON {"min", "opt", "max"}; null entries: any size
KEY_TENSORRT = PREFIX + "tensorrt"      # engine files only: the TensorRT version that built it

INPUT_NAME = "raw"      # float32 N×C_raw×H×W, raw values in contract units
OUTPUT_NAME = "probs"   # float32 N×classes

ENGINE_MAGIC = b"SEENGINE"
_LENGTH = struct.Struct("<I")
MAX_HEADER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class BatchSpec:
    """Batch sizes an export is made for: min = max is a fixed batch in the graph; otherwise the
    graph's batch axis is symbolic and (min, opt, max) is the TensorRT optimisation profile
    (max None: any size, ONNX only)."""

    min: int = 1
    opt: int = 1
    max: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt or (self.max is not None and self.opt > self.max):
            raise UsageError(f"batch range {self.min}:{self.opt}:{self.max} must have 1 <= MIN <= OPT <= MAX")

    @property
    def fixed(self) -> bool:
        return self.max == self.min

    def describe(self) -> str:
        if self.fixed:
            return f"fixed {self.min}"
        if self.max is None:
            return "any size" if self.min == 1 else f"at least {self.min}"
        return f"{self.min}:{self.opt}:{self.max}"

    def to_dict(self) -> dict:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    @classmethod
    def from_dict(cls, data: dict) -> "BatchSpec":
        return cls(int(data.get("min", 1)), int(data.get("opt", 1)), data.get("max"))


@dataclass(frozen=True)
class ModelInfo:
    """The socket-edge metadata of an exported file, parsed and validated."""

    contract: InputContract
    zeta: tuple[float, ...]
    members: tuple[dict, ...]
    provenance: dict
    source: str
    precision: str
    batch: BatchSpec
    format_version: int = FORMAT_VERSION

    def to_props(self, **extra: str) -> dict[str, str]:
        """The string map written into ONNX metadata_props and engine headers."""
        return {
            KEY_FORMAT_VERSION: str(self.format_version),
            KEY_CONTRACT: self.contract.to_json(),
            KEY_ZETA: json.dumps(list(self.zeta)),
            KEY_MEMBERS: json.dumps(list(self.members), sort_keys=True),
            KEY_PROVENANCE: json.dumps(self.provenance, sort_keys=True),
            KEY_SOURCE: self.source,
            KEY_PRECISION: self.precision,
            KEY_BATCH: json.dumps(self.batch.to_dict(), sort_keys=True),
            **extra,
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], name: str) -> "ModelInfo":
        """Parse the string map of a file called `name`; refuse a file without a contract."""
        if KEY_CONTRACT not in props:
            raise ArtifactError(
                f"{name} has no socket-edge input contract in its metadata (it was not written by "
                "socket-edge export); export the model with: socket-edge export MODEL.pt"
            )
        try:
            version = int(props.get(KEY_FORMAT_VERSION, "0"))
            if version > FORMAT_VERSION:
                raise ArtifactError(f"{name} has socket-edge metadata v{version}, newer than this socket-edge "
                                    f"reads (v{FORMAT_VERSION}); upgrade socket-edge")
            info = cls(
                contract=InputContract.from_json(props[KEY_CONTRACT]),
                zeta=tuple(float(z) for z in json.loads(props.get(KEY_ZETA, "[1.0]"))),
                members=tuple(json.loads(props.get(KEY_MEMBERS, "[]"))),
                provenance=json.loads(props.get(KEY_PROVENANCE, "{}")),
                source=props.get(KEY_SOURCE, ""),
                precision=props.get(KEY_PRECISION, "fp32"),
                batch=BatchSpec.from_dict(json.loads(props.get(KEY_BATCH, "{}"))),
                format_version=version,
            )
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise ArtifactError(f"{name} has damaged socket-edge metadata ({exc}); export it again") from None
        except SocketEdgeError as exc:
            raise ArtifactError(f"{name}: {exc}") from None
        return info


def write_engine(path: str | Path, header: Mapping[str, str], engine: bytes) -> Path:
    """Write an engine file: magic, header length, JSON header, serialized engine (atomically)."""
    blob = json.dumps(dict(header), sort_keys=True).encode("utf-8")
    return atomic.write_bytes(path, [ENGINE_MAGIC, _LENGTH.pack(len(blob)), blob, engine])


def read_engine_header(path: str | Path) -> tuple[dict[str, str], int]:
    """The JSON header of an engine file and the offset where the engine bytes start."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"engine file {path} does not exist")
    with open(path, "rb") as f:
        start = f.read(len(ENGINE_MAGIC) + _LENGTH.size)
        if len(start) < len(ENGINE_MAGIC) + _LENGTH.size or not start.startswith(ENGINE_MAGIC):
            raise ArtifactError(
                f"{path} is not a socket-edge engine file (no {ENGINE_MAGIC.decode()} header); a bare TensorRT "
                "engine carries no input contract: build it with socket-edge export --format engine"
            )
        (length,) = _LENGTH.unpack(start[len(ENGINE_MAGIC):])
        if length > MAX_HEADER_BYTES:
            raise ArtifactError(f"{path} has a header of {length} bytes, more than a socket-edge header can be; "
                                "the file is damaged")
        blob = f.read(length)
    if len(blob) != length:
        raise ArtifactError(f"{path} is truncated inside its header; copy the file again")
    try:
        header = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path} has a damaged header ({exc}); build the engine again") from None
    if not isinstance(header, dict) or not all(isinstance(v, str) for v in header.values()):
        raise ArtifactError(f"{path} has a damaged header (not a map of strings); build the engine again")
    return header, len(start) + length


def read_engine(path: str | Path) -> tuple[dict[str, str], bytes]:
    """The header and the serialized engine bytes of an engine file."""
    header, offset = read_engine_header(path)
    with open(path, "rb") as f:
        f.seek(offset)
        engine = f.read()
    if not engine:
        raise ArtifactError(f"{path} has a header but no engine; build the engine again")
    return header, engine
