"""`socket-edge inspect`: what a model file is and what it expects as input."""

from __future__ import annotations

from pathlib import Path

from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError


def member_summary(member: dict) -> dict:
    """A member of an artifact dict as its config plus its parameter count (no weights)."""
    params = sum(int(t.numel()) for k, t in member["state_dict"].items() if not k.endswith("num_batches_tracked"))
    return {**member["config"], "parameters": params}


def summarize(path: str | Path) -> dict:
    """JSON-able summary of a model file (no weights)."""
    path = Path(path)
    if path.suffix in (".onnx", ".engine"):
        return _summarize_exported(path)
    if path.suffix != ".pt":
        raise ArtifactError(f"cannot inspect {path.name}: socket-edge models are .pt, .onnx or .engine files")
    from socket_edge.models import artifact

    data = artifact.read(path)
    members = [member_summary(member) for member in data["members"]]
    prov = data["provenance"]
    return {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "format": f"{data['format']} v{data['format_version']}",
        "kind": data["kind"],
        "contract": data["contract"],
        "members": members,
        "zeta": data["zeta"],
        "provenance": prov,
    }


def _tensor(value_info) -> dict:
    import onnx

    dims = [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type).name
    return {"name": value_info.name, "dtype": dtype, "shape": dims}


def _summarize_exported(path: Path) -> dict:
    """An exported .onnx (read with the onnx package, weights not loaded) or .engine (its header;
    no TensorRT needed): the same summary as a .pt, plus the graph and the export provenance."""
    from socket_edge.modelfile import INPUT_NAME, KEY_TENSORRT, OUTPUT_NAME, ModelInfo, read_engine_header

    if not path.is_file():
        raise ArtifactError(f"model file {path} does not exist")
    if path.suffix == ".onnx":
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and onnx's own errors for foreign files
            raise ArtifactError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from None
        info = ModelInfo.from_props({p.key: p.value for p in proto.metadata_props}, str(path))
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        graph = {"opset": opset, "nodes": len(proto.graph.node),
                 "inputs": [_tensor(v) for v in proto.graph.input], "outputs": [_tensor(v) for v in proto.graph.output]}
        fmt = f"onnx opset {opset}, {info.precision}"
    else:
        header, _ = read_engine_header(path)
        info = ModelInfo.from_props(header, str(path))
        c = info.contract
        graph = {"tensorrt": header.get(KEY_TENSORRT, "?"),
                 "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": ["N", *c.input_shape]}],
                 "outputs": [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(c.class_names)]}]}
        fmt = f"TensorRT {graph['tensorrt']} engine, {info.precision}"
    graph.update(precision=info.precision, batch=info.batch.to_dict())
    export = info.provenance.get("export", {})
    return {
        "file": str(path), "size_bytes": path.stat().st_size, "format": fmt, "kind": export.get("kind", "ensemble"),
        "contract": info.contract.to_dict(), "members": list(info.members), "zeta": list(info.zeta),
        "provenance": info.provenance.get("source", {}), "source": info.source, "graph": graph, "export": export,
    }


def _tensor_text(tensor: dict) -> str:
    return f"{tensor['name']} {tensor['dtype']} {'×'.join(str(d) for d in tensor['shape'])}"


def _graph_lines(summary: dict) -> list[str]:
    from socket_edge.modelfile import BatchSpec

    graph = summary["graph"]
    lines = ["", "graph",
             f"  input     {', '.join(_tensor_text(t) for t in graph['inputs'])} "
             f"(batch {BatchSpec.from_dict(graph['batch']).describe()})",
             f"  output    {', '.join(_tensor_text(t) for t in graph['outputs'])}"]
    if "nodes" in graph:
        lines.append(f"  nodes     {graph['nodes']}")
    lines.append(f"  from      {summary['source']}")
    return lines


def _export_lines(export: dict) -> list[str]:
    lines = ["", "export"]
    for key in ("command", "created"):
        if key in export:
            lines.append(f"  {key:<9} {export[key]}")
    for result in export.get("parity", []):
        lines.append(f"  parity    {result['precision']}: max |Δp| {result['max_abs_diff']:.2e}, argmax agreement "
                     f"{result['argmax_agreement']:.1f}% on {result['frames']}")
    return lines


def describe(summary: dict) -> str:
    """The summary as readable text."""
    contract = InputContract.from_dict(summary["contract"])
    prov = summary["provenance"]
    lines = [
        f"{summary['file']}  ({summary['size_bytes'] / 1e6:.1f} MB, {summary['format']}, {summary['kind']})",
        "",
        "input contract",
        *("  " + line for line in contract.describe()),
        *(_graph_lines(summary) if "graph" in summary else []),
        "",
        "members",
    ]
    for member, zeta in zip(summary["members"], summary["zeta"]):
        lines.append(
            f"  ζ={zeta:.3f}  {member['arch']} ({member['head']} head, {member['num_classes']} classes, "
            f"{member['parameters'] / 1e6:.2f} M parameters)"
        )
    lines += ["", "provenance"]
    for key in ("stage", "command", "created", "seed", "device"):
        if key in prov:
            lines.append(f"  {key:<9} {prov[key]}")
    if "versions" in prov:
        lines.append("  versions  " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()))
    if "data" in prov:
        data = prov["data"]
        lines.append(f"  data      {data.get('root', '?')} ({data.get('images', '?')} images)")
    result = prov.get("metrics", {})
    shown = {k: v for k, v in result.items() if isinstance(v, (int, float))}
    if shown:
        lines.append("  metrics   " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    if summary.get("export"):
        lines += _export_lines(summary["export"])
    return "\n".join(lines)
