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


def _mapping(value: object) -> dict:
    """A provenance block where it is a mapping, else none: provenance is free-form data of the file."""
    return value if isinstance(value, dict) else {}


def _number(value: object, spec: str) -> str:
    """A provenance number formatted with `spec`, or as it is when it is not a number."""
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _export_lines(export: dict) -> list[str]:
    lines = ["", "export"]
    for key in ("command", "created"):
        if key in export:
            lines.append(f"  {key:<9} {export[key]}")
    parity = export.get("parity")
    for result in map(_mapping, parity if isinstance(parity, list) else []):
        lines.append(f"  parity    {result.get('precision', '?')}: max |Δp| {_number(result.get('max_abs_diff'), '.2e')}, "
                     f"argmax agreement {_number(result.get('argmax_agreement'), '.1f')}% on {result.get('frames', '?')}")
    int8 = _mapping(export.get("int8"))
    if int8:
        calib = _mapping(int8.get("calibration"))
        lines.append(f"  int8      {int8.get('scheme', '?')} scheme, calibrated on {calib.get('frames', '?')} of "
                     f"{calib.get('of', '?')} images of {calib.get('folder', '?')} ({calib.get('method', '?')})")
    return lines


def describe(summary: dict) -> str:
    """The summary as readable text."""
    contract = InputContract.from_dict(summary["contract"])
    prov = _mapping(summary["provenance"])
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
    if isinstance(prov.get("versions"), dict):
        lines.append("  versions  " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()))
    if isinstance(prov.get("data"), dict):
        data = prov["data"]
        lines.append(f"  data      {data.get('root', '?')} ({data.get('images', '?')} images)")
    result = _mapping(prov.get("metrics"))
    shown = {k: v for k, v in result.items() if isinstance(v, (int, float))}
    if shown:
        lines.append("  metrics   " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    repeats = prov.get("repeats")
    if isinstance(repeats, list) and repeats and all(isinstance(r, dict) for r in repeats):
        seeds = ", ".join(str(r.get("seed")) for r in repeats)
        each = " / ".join(f"{r['accuracy']:.1f}" if isinstance(r.get("accuracy"), (int, float)) else "–"
                          for r in repeats)
        lines.append(f"  repeats   {len(repeats)} adaptations averaged (seeds {seeds}; accuracy each {each}); each "
                     f"one's epochs and term balance: socket-edge inspect {repeats[0].get('output')}")
    balance = term_balance.history_lines(result.get("epochs", [])) if isinstance(result, dict) else []
    if balance:
        lines += ["", "term balance (gradient norms of the weighted loss terms on the first step of an epoch; "
                      f"flagged below {term_balance.INERT}× or above {term_balance.DOMINANT}× IM's)"]
        lines += ["  " + line for line in balance]
    if summary.get("export"):
        lines += _export_lines(summary["export"])
    return "\n".join(lines)
