"""`socket-edge inspect`: what a model file is and what it expects as input, as text, from the
summary its backend reads (socket_edge.backends.summarize)."""

from __future__ import annotations

from socket_edge.adapt import term_balance
from socket_edge.contract import InputContract
from socket_edge.modelfile import BatchSpec


def _tensor_text(tensor: dict) -> str:
    return f"{tensor['name']} {tensor['dtype']} {'×'.join(str(d) for d in tensor['shape'])}"


def _graph_lines(summary: dict) -> list[str]:
    graph = summary["graph"]
    lines = ["", "graph",
             f"  input     {', '.join(_tensor_text(t) for t in graph['inputs'])} "
             f"(batch {BatchSpec.from_dict(graph['batch']).describe()})",
             f"  output    {', '.join(_tensor_text(t) for t in graph['outputs'])}",
             f"  from      {summary['source']}"]
    return lines


def _export_lines(export: dict) -> list[str]:
    lines = ["", "export"]
    for key in ("command", "created"):
        if key in export:
            lines.append(f"  {key:<9} {export[key]}")
    for result in export.get("parity", []):
        lines.append(f"  parity    {result['precision']}: max |Δp| {result['max_abs_diff']:.2e}, argmax agreement "
                     f"{result['argmax_agreement']:.1f}% on {result['frames']}")
    int8 = export.get("int8")
    if int8:
        calib = int8["calibration"]
        lines.append(f"  int8      {int8['scheme']} scheme, calibrated on {calib['frames']} of {calib['of']} images of "
                     f"{calib['folder']} ({calib['method']})")
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
    balance = term_balance.history_lines(result.get("epochs", [])) if isinstance(result, dict) else []
    if balance:
        lines += ["", "term balance (gradient norms of the weighted loss terms on the first step of an epoch; "
                      f"flagged below {term_balance.INERT}× or above {term_balance.DOMINANT}× IM's)"]
        lines += ["  " + line for line in balance]
    if summary.get("export"):
        lines += _export_lines(summary["export"])
    return "\n".join(lines)
