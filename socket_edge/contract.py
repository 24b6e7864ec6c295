"""The input contract: what a model expects from a raw sensor frame.

It travels with the model (in the .pt artifact, in ONNX metadata, in the engine
header) so that every consumer builds the same preprocessing from the file alone.

Two halves, one definition:
- host side (numpy/OpenCV, `socket_edge.data.preprocess`): decode, channel check,
  bit depth / depth-unit conversion into the contract's raw unit, resize. Output:
  float32 C×H×W of *raw* values (e.g. depth in contract units, as float).
- in the graph (`socket_edge.models.input_module`): scale to physical units, clip
  to the valid range, invalid pixels, channel replication, mean/std.

Standard library only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from socket_edge import jsontext
from socket_edge.errors import ContractError

CONTRACT_VERSION = 1
MODALITIES = ("rgb", "depth", "ir", "nir")
RESIZE_POLICIES = ("stretch", "center_crop")
RAW_DTYPES = {"uint8": 255, "uint16": 65535}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_DEPTH_SCALE = 0.001  # metres per unit: millimetres
DEFAULT_DEPTH_RANGE = (0.0, 10.0)  # metres

# modalities that are the same physical signal for a model (RealSense IR is near-infrared)
_SAME_SIGNAL = {"ir": "nir", "nir": "nir", "rgb": "rgb", "depth": "depth"}


def raw_channels(modality: str) -> int:
    """Channels of a raw frame of this modality: 3 for RGB, 1 for depth and infrared."""
    return 3 if modality == "rgb" else 1


def modalities_match(a: str, b: str) -> bool:
    """True when a model made for modality `a` may be fed frames of modality `b`."""
    return _SAME_SIGNAL.get(a) == _SAME_SIGNAL.get(b)


UNIT_RANGE = (1e-9, 100.0)  # metres (or 1/full-scale) per raw unit: a depth scale outside it is a typo
MAX_SIDE = 8192             # pixels of an input side
MAX_CLASSES = 100_000
MAX_CHANNELS = 16


def number_problem(value: object, low: float | None = None, high: float | None = None, *, above: bool = False,
                   whole: bool = False) -> str | None:
    """Why `value` is not a finite number in [low, high] ((low, high] with `above`; a whole number
    with `whole`), in words ("must be a finite number, got 'inf'"); None when it is one. The one
    check of every number read from outside: options, URIs, artifacts, ONNX metadata, sidecars."""
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        return f"must be {'a whole number' if whole else 'a number'}, got {value!r} ({type(value).__name__})"
    if not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if low is not None and (value <= low if above else value < low):
        return f"must be {'more than' if above else 'at least'} {low:g}, got {value!r}"
    if high is not None and value > high:
        return f"must be at most {high:g}, got {value!r}"
    return None


def _problems(c: "InputContract") -> list[str]:
    """What is wrong with a contract's fields, each in words (empty: nothing). Types first: a
    contract comes from files a user may have edited or crafted."""
    problems = []
    for name, choices in (("modality", MODALITIES), ("resize", RESIZE_POLICIES), ("raw_dtype", tuple(RAW_DTYPES))):
        value = getattr(c, name)
        if not isinstance(value, str) or value not in choices:
            problems.append(f"{name} {value!r} is not one of {', '.join(choices)}")

    def check(name: str, value: object, *limits, **kind) -> None:
        problem = number_problem(value, *limits, **kind)
        if problem:
            problems.append(f"{name} {problem}")

    if not isinstance(c.size, tuple) or len(c.size) != 2:
        problems.append(f"size must be (height, width), got {c.size!r}")
    else:
        for side in c.size:
            check("size", side, 1, MAX_SIDE, whole=True)
    check("unit", c.unit, *UNIT_RANGE)
    if not isinstance(c.valid_range, tuple) or len(c.valid_range) != 2:
        problems.append(f"valid_range must be (min, max), got {c.valid_range!r}")
    else:
        before = len(problems)
        for bound in c.valid_range:
            check("valid_range", bound, 0, 1e6)
        if len(problems) == before and not c.valid_range[1] - c.valid_range[0] >= 1e-6:
            problems.append(f"valid_range {c.valid_range} must have max > min")
    if not isinstance(c.invalid_zero, bool):
        problems.append(f"invalid_zero must be true or false, got {c.invalid_zero!r}")
    check("invalid_fill", c.invalid_fill, 0, 1)
    check("channels", c.channels, 1, MAX_CHANNELS, whole=True)
    for name in ("mean", "std"):
        values = getattr(c, name)
        if not isinstance(values, tuple) or (isinstance(c.channels, int) and len(values) != c.channels):
            problems.append(f"mean/std need {c.channels!r} values each, {name} is {_short(values)}")
            continue
        low = -1e3 if name == "mean" else 1e-6  # std 0 would divide by zero in the graph: NaN scores
        for value in values:
            check(name, value, low, 1e3)
    names = c.class_names
    if not isinstance(names, tuple) or not all(isinstance(n, str) and n for n in names):
        problems.append(f"class_names must be a list of non-empty strings, got {_short(names)}")
    elif not names:
        problems.append("class_names is empty")
    elif len(names) > MAX_CLASSES:
        problems.append(f"class_names has {len(names)} names, more than {MAX_CLASSES}")
    elif len(set(names)) != len(names):
        problems.append("class_names has duplicates")
    version = number_problem(c.version, 1, whole=True)
    if version:
        problems.append(f"version {version}")
    elif c.version > CONTRACT_VERSION:
        problems.append(f"contract version {c.version} is newer than this socket-edge ({CONTRACT_VERSION}); "
                        "upgrade socket-edge")
    return problems


def _short(value: object) -> str:
    """A value's repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class InputContract:
    """What a model expects: see the module docstring for where each field is applied.

    unit: physical value of one raw unit. Depth: metres per unit (0.001 = mm).
          Intensity (rgb, ir, nir): 1/full-scale, so raw values map to [0, 1].
    valid_range: clip range in physical units (metres for depth, [0, 1] for intensity);
          the clipped value is rescaled to [0, 1] over this range.
    invalid_zero: a raw 0 means "no reading" (depth) and becomes `invalid_fill` ([0, 1] scale).
    """

    modality: str
    class_names: tuple[str, ...]
    size: tuple[int, int] = (224, 224)
    resize: str = "stretch"
    raw_dtype: str = "uint8"
    unit: float = 1.0 / 255.0
    valid_range: tuple[float, float] = (0.0, 1.0)
    invalid_zero: bool = False
    invalid_fill: float = 0.0
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        problems = dict.fromkeys(_problems(self))  # each once: "std must be at least 1e-06, got 0.0"
        if problems:
            raise ContractError("invalid input contract: " + "; ".join(problems))

    @classmethod
    def for_modality(
        cls,
        modality: str,
        class_names: tuple[str, ...] | list[str],
        size: int | tuple[int, int] = 224,
        *,
        depth_scale: float = DEFAULT_DEPTH_SCALE,
        depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE,
        raw_dtype: str | None = None,
        resize: str = "stretch",
    ) -> "InputContract":
        """The standard contract for a modality (ImageNet mean/std, 3 network channels)."""
        hw = (size, size) if isinstance(size, int) else tuple(size)
        names = tuple(class_names)
        if modality == "depth":
            return cls(
                modality="depth", class_names=names, size=hw, resize=resize, raw_dtype="uint16",
                unit=float(depth_scale), valid_range=tuple(float(v) for v in depth_range),
                invalid_zero=True, invalid_fill=0.0,
            )
        dtype = raw_dtype or "uint8"
        if dtype not in RAW_DTYPES:
            raise ContractError(f"raw_dtype {dtype!r} is not one of {', '.join(RAW_DTYPES)}")
        return cls(modality=modality, class_names=names, size=hw, resize=resize, raw_dtype=dtype,
                   unit=1.0 / RAW_DTYPES[dtype])

    def retarget(
        self,
        modality: str,
        *,
        depth_scale: float = DEFAULT_DEPTH_SCALE,
        depth_range: tuple[float, float] = DEFAULT_DEPTH_RANGE,
        raw_dtype: str | None = None,
    ) -> "InputContract":
        """The contract for feeding this model another modality (the cross-modal target):
        same classes, size, resize and network normalisation; the target's raw units."""
        target = InputContract.for_modality(
            modality, self.class_names, self.size, depth_scale=depth_scale, depth_range=depth_range,
            raw_dtype=raw_dtype, resize=self.resize,
        )
        return target.replace(channels=self.channels, mean=self.mean, std=self.std)

    @property
    def raw_channels(self) -> int:
        """Channels of the raw frame the host side produces (3 for RGB, else 1)."""
        return raw_channels(self.modality)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one preprocessed raw frame: (channels, height, width)."""
        return (self.raw_channels, *self.size)

    def with_classes(self, class_names: tuple[str, ...] | list[str]) -> "InputContract":
        """The same contract with other class names."""
        return self.replace(class_names=tuple(class_names))

    def replace(self, **changes) -> "InputContract":
        """A copy with some fields changed (validated again)."""
        return InputContract.from_dict({**self.to_dict(), **changes})

    def check_modality(self, modality: str, what: str = "input") -> None:
        """Refuse frames of a modality this model was not made for."""
        if not modalities_match(self.modality, modality):
            raise ContractError(
                f"this model expects {self.modality} frames but the {what} is {modality}; "
                f"use a model adapted to {modality} (socket-edge adapt --modality {modality})"
            )

    def to_dict(self) -> dict:
        """Plain data (lists, floats, strings) for artifacts and metadata."""
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d

    def to_json(self) -> str:
        """Compact JSON, for ONNX metadata_props and engine sidecars."""
        return jsontext.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict) -> "InputContract":
        """Rebuild (and validate) a contract stored by to_dict."""
        if not isinstance(data, dict):
            raise ContractError(f"input contract must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in set(data) - known)
        if unknown:
            raise ContractError(f"input contract has unknown fields {unknown}; upgrade socket-edge")
        missing = sorted(n for n in ("modality", "class_names") if n not in data)
        if missing:
            raise ContractError(f"input contract lacks {missing}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "InputContract":
        """Rebuild a contract from to_json's text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"input contract is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def describe(self) -> list[str]:
        """Human-readable lines for `socket-edge inspect`."""
        h, w = self.size
        lo, hi = self.valid_range
        if self.modality == "depth":
            unit = f"depth, {self.unit * 1000:g} mm per unit ({self.raw_dtype}); valid {lo:g}–{hi:g} m"
            invalid = f"0 = no reading → {self.invalid_fill:g} (on the [0, 1] scale)"
        else:
            unit = f"{self.modality} intensity, {self.raw_dtype} full scale = 1.0; valid {lo:g}–{hi:g}"
            invalid = "none"
        return [
            f"modality      {self.modality} ({self.raw_channels} channel{'s' if self.raw_channels > 1 else ''} raw)",
            f"raw values    {unit}",
            f"invalid       {invalid}",
            f"input size    {h}×{w} ({self.resize})",
            f"network       {self.channels} channels, mean {_fmt(self.mean)}, std {_fmt(self.std)}",
            f"classes       {len(self.class_names)}: {', '.join(self.class_names)}",
            f"contract      v{self.version}",
        ]


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"
