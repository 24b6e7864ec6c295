"""What an exported model file carries besides its graph: the socket-edge metadata keys
(ONNX `metadata_props`, the engine's sidecar) and the engine's pair of files.

Standard library only, so that the runtime (no torch, no `onnx` package) and `inspect`
(no TensorRT) read the same definitions the exporter writes.

ONNX: each key below is one `metadata_props` entry whose value is a string (JSON for the
structured ones). Engine: `MODEL.engine` is a plain TensorRT plan (the serialized bytes, as
`trtexec --loadEngine`, DeepStream and Triton take it) and `MODEL.engine.json` beside it is a
JSON object holding the same string map as the ONNX metadata plus the TensorRT version and
the GPU it was built for, so one parser (`ModelInfo.from_props`) reads both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from socket_edge import atomic, jsontext
from socket_edge.contract import InputContract, number_problem
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
KEY_TENSORRT = PREFIX + "tensorrt"      # engine sidecars only: the TensorRT version that built the plan
KEY_GPU = PREFIX + "gpu"                # engine sidecars only: the GPU's name, as CUDA reports it
KEY_COMPUTE = PREFIX + "compute"        # engine sidecars only: the GPU's compute capability, "8.7"

INPUT_NAME = "raw"      # float32 N×C_raw×H×W, raw values in contract units
OUTPUT_NAME = "probs"   # float32 N×classes

MAX_SIDECAR_BYTES = 16 * 1024 * 1024
MAX_BATCH = 65536


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
        """The batch sizes of a file's metadata: whole numbers from 1 to MAX_BATCH (max: or null)."""
        values = {"min": data.get("min", 1), "opt": data.get("opt", 1), "max": data.get("max")}
        for key, value in values.items():
            problem = None if key == "max" and value is None else number_problem(value, 1, MAX_BATCH, whole=True)
            if problem:
                raise ValueError(f"batch {key} {problem}")
        return cls(values["min"], values["opt"], values["max"])


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
        """The string map written into ONNX metadata_props and engine sidecars."""
        return {
            KEY_FORMAT_VERSION: str(self.format_version),
            KEY_CONTRACT: self.contract.to_json(),
            KEY_ZETA: jsontext.dumps(list(self.zeta)),
            KEY_MEMBERS: jsontext.dumps(list(self.members), sort_keys=True),
            KEY_PROVENANCE: jsontext.dumps(self.provenance, sort_keys=True),
            KEY_SOURCE: self.source,
            KEY_PRECISION: self.precision,
            KEY_BATCH: jsontext.dumps(self.batch.to_dict(), sort_keys=True),
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
            contract = InputContract.from_dict(jsontext.loads(props[KEY_CONTRACT]))
            info = cls(
                contract=contract,
                zeta=_zeta(jsontext.loads(props.get(KEY_ZETA, "[1.0]"))),
                members=_members(jsontext.loads(props.get(KEY_MEMBERS, "[]"))),
                provenance=_typed(jsontext.loads(props.get(KEY_PROVENANCE, "{}")), dict, "provenance"),
                source=_typed(props.get(KEY_SOURCE, ""), str, "source"),
                precision=_precision(props.get(KEY_PRECISION, "fp32")),
                batch=BatchSpec.from_dict(_typed(jsontext.loads(props.get(KEY_BATCH, "{}")), dict, "batch")),
                format_version=version,
            )
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise ArtifactError(f"{name} has damaged socket-edge metadata ({exc}); export it again") from None
        except ArtifactError:
            raise
        except SocketEdgeError as exc:
            raise ArtifactError(f"{name}: {exc}") from None
        return info


PRECISIONS = ("fp32", "fp16", "int8")


def _typed(value: object, kind: type, what: str, item: type | None = None):
    """`value` when it is a `kind` (of `item`s), else a ValueError naming the field."""
    if not isinstance(value, kind) or (item is not None and not all(isinstance(v, item) for v in value)):
        shape = f"a {kind.__name__}" + (f" of {item.__name__}s" if item else "")
        raise ValueError(f"{what} is {type(value).__name__}, not {shape}")
    return value


MEMBER_FIELDS = {"arch": str, "head": str, "num_classes": int, "parameters": int}


def _members(value: object) -> tuple[dict, ...]:
    """The members' summaries (`inspect` shows them): dicts with arch, head, num_classes, parameters."""
    for member in _typed(value, list, "members", dict):
        for key, kind in MEMBER_FIELDS.items():
            if not isinstance(member.get(key), kind) or isinstance(member.get(key), bool):
                raise ValueError(f"a member's {key} is {member.get(key)!r}, not a {kind.__name__}")
    return tuple(value)


def _zeta(value: object) -> tuple[float, ...]:
    """ζ: a non-empty list of weights in [0, 1] with a positive sum."""
    weights = _typed(value, list, "zeta")
    problem = next((p for p in (number_problem(z, 0, 1) for z in weights) if p), None)
    if problem or not weights or not sum(weights) > 0:
        raise ValueError(f"a ζ weight {problem}" if problem else f"ζ {weights} has no positive weight")
    return tuple(float(z) for z in weights)


def _precision(value: object) -> str:
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ValueError(f"precision is {value!r}, not one of {', '.join(PRECISIONS)}")
    return value


def sidecar_path(engine: str | Path) -> Path:
    """The sidecar of an engine file: `MODEL.engine` → `MODEL.engine.json`."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_engine(path: str | Path, props: Mapping[str, str], plan: bytes) -> Path:
    """Write a plan and its sidecar, each atomically. The old sidecar goes first and the new one
    comes last, so a pair cut short is a plan without a sidecar (refused), never a plan with
    another plan's sidecar."""
    sidecar = sidecar_path(path)
    try:
        sidecar.unlink(missing_ok=True)
    except OSError as exc:
        raise atomic.write_error(sidecar, exc) from None
    atomic.write_bytes(path, [plan])
    atomic.write_text(sidecar, jsontext.dumps(dict(props), sort_keys=True, indent=1) + "\n")
    return Path(path)


def read_sidecar(path: str | Path) -> dict[str, str]:
    """The string map in the sidecar of the engine file `path`; one line when either is missing
    or the sidecar is damaged."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if not path.is_file():
        raise ArtifactError(f"engine file {path} does not exist")
    rebuild = "socket-edge export MODEL.pt --format engine on this device"
    if not sidecar.is_file():
        raise ArtifactError(f"{path} has no sidecar {sidecar.name} beside it (its contract, classes and the GPU it "
                            f"was built for); copy it beside the engine, or rebuild both with: {rebuild}")
    if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
        raise ArtifactError(f"{sidecar} is larger than a socket-edge sidecar can be; rebuild with: {rebuild}")
    try:
        props = jsontext.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{sidecar} is damaged ({exc}); rebuild with: {rebuild}") from None
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise ArtifactError(f"{sidecar} is damaged (not a JSON map of strings); rebuild with: {rebuild}")
    return props
