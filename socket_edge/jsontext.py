"""JSON as socket-edge writes and reads it: strict, never NaN or Infinity (which are not JSON:
`"score": NaN` breaks every other JSON reader). Every json.dumps of the package goes through
`dumps`; readers of outside JSON (ONNX metadata, engine sidecars, run-folder settings) use `loads`.

Standard library only."""

from __future__ import annotations

import json
from typing import Any

from socket_edge.errors import SocketEdgeError


def dumps(value: Any, **options: Any) -> str:
    """json.dumps with allow_nan=False: a NaN or an infinity is one SocketEdgeError naming the value,
    not a line other programs cannot parse."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError as exc:  # "Out of range float values are not JSON compliant: nan"
        raise SocketEdgeError(f"a result holds a number that is not finite ({exc}); it is not written as JSON. "
                              "The model or its input produced it: check them (socket-edge inspect MODEL)") from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str | bytes) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity (json.JSONDecodeError is a ValueError)."""
    return json.loads(text, parse_constant=_refuse_constant)
