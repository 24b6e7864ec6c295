"""Property-based tests (Hypothesis) over every reader of outside data: model artifacts (.pt), ONNX
metadata_props, engine sidecars (JSON), source URIs, run folders' settings files. Whatever they
are given ends in a result or one socket-edge error (errors.py), never an "unexpected" exception,
and the file read is left as it was. Examples per strategy are kept modest (the suite stays fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from socket_edge.backends import summarize
from socket_edge.contract import InputContract
from socket_edge.errors import SocketEdgeError
from socket_edge.inspection import describe
from socket_edge.modelfile import (KEY_BATCH, KEY_CONTRACT, KEY_FORMAT_VERSION, KEY_MEMBERS, KEY_PRECISION,
                                   KEY_PROVENANCE, KEY_SOURCE, KEY_ZETA, ModelInfo, sidecar_path)
from socket_edge.models import artifact
from socket_edge.runtime.uri import parse_source
from socket_edge.training.run_folder import RunFolder

FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
CONTRACT = InputContract.for_modality("depth", ("bars", "blob", "ring"), 32)

# JSON-like values: what an edited or crafted file can hold (NaN and infinities included)
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                            max_size=4), max_leaves=12)
CONTRACT_FIELDS = list(CONTRACT.to_dict())


def outcome(read, *args):
    """Run a reader: its result, or the SocketEdgeError it raised (any other exception fails the test)."""
    try:
        result = read(*args)
    except SocketEdgeError as exc:
        assert str(exc).strip()  # the CLI prints it on one line (terminal.printable escapes what it quotes)
        event(f"{getattr(read, '__name__', 'read')}: {type(exc).__name__}")
        return exc
    event(f"{getattr(read, '__name__', 'read')}: a result")
    return result


@st.composite
def contracts(draw) -> dict:
    """A valid contract's fields with some replaced, removed or added."""
    data = CONTRACT.to_dict()
    if draw(st.booleans()):
        return data
    for key in draw(st.lists(st.sampled_from(CONTRACT_FIELDS), max_size=3, unique=True)):
        data[key] = draw(values)
    if draw(st.booleans()):
        data.pop(draw(st.sampled_from(CONTRACT_FIELDS)))
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.text(max_size=6))] = draw(values)
    return data


@st.composite
def artifacts(draw) -> object:
    """An artifact dict (tiny weights) with fields replaced by other values, or any value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    member = {"config": {"arch": "mobilenet_v3_small", "num_classes": 3, "head": "paper", "bottleneck": 256},
              "state_dict": {"w": torch.zeros(2)}}
    data = {"format": "socket-edge-model", "format_version": 1, "kind": "source", "contract": draw(contracts()),
            "zeta": [1.0], "members": [member], "provenance": {"command": "socket-edge train-source"}}
    for key in draw(st.lists(st.sampled_from(["format_version", "kind", "zeta", "members", "provenance"]),
                             max_size=2, unique=True)):
        data[key] = draw(values)
    for key in draw(st.lists(st.sampled_from(["arch", "num_classes", "head", "bottleneck", "dropped_blocks"]),
                             max_size=2, unique=True)):
        member["config"][key] = draw(values)
    return data


@FUZZ
@given(data=artifacts())
def test_artifacts(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz-pt") / "model.pt"
    torch.save(data, path)
    before = path.read_bytes()
    result = outcome(artifact.read, path)
    if not isinstance(result, SocketEdgeError):  # a readable artifact: inspect shows it, export/run build it
        outcome(lambda: describe(summarize(path)))
        outcome(artifact.load, path)
    assert path.read_bytes() == before


texts = st.text(max_size=40) | values.map(json.dumps)
PROPS = {KEY_FORMAT_VERSION: st.sampled_from(["1", "0", "2", "-1", "x", "1e400"]) | st.text(max_size=4),
         KEY_CONTRACT: contracts().map(lambda d: json.dumps(d)) | texts,
         KEY_ZETA: st.lists(st.floats(), max_size=3).map(json.dumps) | texts,
         KEY_MEMBERS: st.lists(st.dictionaries(st.sampled_from(["arch", "head", "num_classes", "parameters"]), scalars,
                                               max_size=4), max_size=2).map(json.dumps) | texts,
         KEY_PROVENANCE: values.map(json.dumps) | texts, KEY_SOURCE: st.text(max_size=10),
         KEY_PRECISION: st.sampled_from(["fp32", "fp16", "int8", "fp8"]) | texts,
         KEY_BATCH: st.dictionaries(st.sampled_from(["min", "opt", "max"]), scalars, max_size=3).map(json.dumps) | texts}
VALID = {KEY_FORMAT_VERSION: "1", KEY_CONTRACT: CONTRACT.to_json(), KEY_ZETA: "[1.0]",
         KEY_MEMBERS: json.dumps([{"arch": "mobilenet_v2", "head": "paper", "num_classes": 3, "parameters": 10}]),
         KEY_PROVENANCE: "{}", KEY_SOURCE: "model.pt", KEY_PRECISION: "fp32", KEY_BATCH: '{"min": 1, "opt": 1}'}


@st.composite
def metadata(draw) -> dict[str, str]:
    """ONNX metadata_props / sidecar string maps: the socket-edge keys, each valid, another value or absent."""
    props = {}
    for key, strategy in PROPS.items():
        choice = draw(st.integers(0, 5))
        if choice >= 3:
            props[key] = VALID[key]
        elif choice:
            props[key] = draw(strategy)
    return props


@FUZZ
@given(props=metadata())
def test_onnx_metadata(props):
    info = outcome(ModelInfo.from_props, props, "model.onnx")
    if isinstance(info, ModelInfo):
        assert json.loads(json.dumps(info.to_props(), allow_nan=False))  # what is read can be written back


@FUZZ
@given(props=metadata(), raw=st.none() | st.binary(max_size=64) | values.map(lambda v: json.dumps(v).encode()))
def test_engine_sidecars(tmp_path_factory, props, raw):
    engine = tmp_path_factory.mktemp("fuzz-engine") / "model.engine"
    engine.write_bytes(b"\x08\x07")
    sidecar = sidecar_path(engine)
    sidecar.write_bytes(raw if raw is not None else json.dumps(props).encode())
    before = sidecar.read_bytes()
    result = outcome(summarize, engine)
    if isinstance(result, dict):
        outcome(describe, result)
    assert sidecar.read_bytes() == before and engine.read_bytes() == b"\x08\x07"


QUERY_KEYS = ["stream", "index", "width", "height", "fps", "modality", "depth_scale", "loop", "transport", "listen",
              "x"]
query_values = (st.sampled_from(["inf", "nan", "-1", "1e400", "0", "1", "0.001", "depth", "infrared", "ir", "tcp", ""])
                | st.text(max_size=8) | st.integers().map(str) | st.floats().map(str))


@st.composite
def uris(draw) -> str:
    head = draw(st.sampled_from(["realsense://", "realsense://123", "rec.db3", "rec.bag", "0", "/dev/video0",
                                 "v4l2:///dev/video0", "clip.mkv", "clip.mp4", "frames/*.png", "csi://0", "csi://x",
                                 "rtsp://host:554/p", "http://x", "", "missing.xyz"]) | st.text(max_size=20))
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), query_values), max_size=4))
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return f"{head}?{query}" if query else head


@FUZZ
@given(uri=uris(), scale=st.none() | st.floats())
def test_source_uris(uri, scale):
    spec = outcome(parse_source, uri, scale)
    if not isinstance(spec, SocketEdgeError) and spec.depth_scale is not None:
        assert 0 < spec.depth_scale <= 100


@FUZZ
@given(raw=st.binary(max_size=64) | values.map(lambda v: json.dumps(v).encode()),
       settings_now=st.dictionaries(st.text("abcdef_", min_size=1, max_size=6), values, max_size=3))
def test_run_folder_settings(tmp_path_factory, raw, settings_now):
    run = RunFolder(tmp_path_factory.mktemp("fuzz-run") / "m-run")
    run.root.mkdir()
    run.config.write_bytes(raw)
    try:
        json.dumps(settings_now, allow_nan=False)
    except ValueError:
        return  # the trainer's own settings are finite; only the file is from outside
    result = outcome(run.restore_checkpoint, settings_now, None, None, None)
    assert result is None or isinstance(result, SocketEdgeError)
    assert run.config.read_bytes() == raw
