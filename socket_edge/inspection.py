"""`socket-edge inspect`: what a model file is and what it expects as input."""

from __future__ import annotations

from pathlib import Path

from socket_edge.contract import InputContract
from socket_edge.errors import ArtifactError


def summarize(path: str | Path) -> dict:
    """JSON-able summary of a model file (no weights)."""
    path = Path(path)
    if path.suffix != ".pt":
        raise ArtifactError(f"cannot inspect {path.name}: socket-edge models are .pt files")
    from socket_edge.models import artifact

    data = artifact.read(path)
    members = []
    for member in data["members"]:
        params = sum(int(t.numel()) for k, t in member["state_dict"].items() if not k.endswith("num_batches_tracked"))
        members.append({**member["config"], "parameters": params})
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


def describe(summary: dict) -> str:
    """The summary as readable text."""
    contract = InputContract.from_dict(summary["contract"])
    prov = summary["provenance"]
    lines = [
        f"{summary['file']}  ({summary['size_bytes'] / 1e6:.1f} MB, {summary['format']}, {summary['kind']})",
        "",
        "input contract",
        *("  " + line for line in contract.describe()),
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
    return "\n".join(lines)
