"""What the exported backends (.onnx, .engine) share: the socket-edge metadata of the file
(modelfile.ModelInfo), a contract built into the graph, and the shape of `inspect`'s summary."""

from __future__ import annotations

from pathlib import Path

from socket_edge.contract import InputContract
from socket_edge.errors import ContractError
from socket_edge.modelfile import ModelInfo


class ExportedModel:
    """Base of OnnxModel and EngineModel: `info` (the file's metadata) and `name` are set by the subclass."""

    backend: str
    name: str
    info: ModelInfo

    @property
    def contract(self) -> InputContract:
        """The input contract the graph was exported with."""
        return self.info.contract

    def with_contract(self, contract: InputContract) -> "ExportedModel":
        """Refused: the contract is part of the graph, so it cannot be fed another modality's units."""
        raise ContractError(
            f"{self.name} has its {self.contract.modality} input contract built into the graph and cannot be fed "
            f"{contract.modality} as it is; evaluate the .pt with --modality {contract.modality} instead"
        )


def summary(path: Path, info: ModelInfo, fmt: str, graph: dict) -> dict:
    """`inspect`'s summary of an exported file: the same keys as a .pt's, plus the graph (inputs,
    outputs, precision, batch) and the export provenance."""
    export = info.provenance.get("export")
    export = export if isinstance(export, dict) else {}  # provenance is free-form: shown where it has its shape
    return {
        "file": str(path), "size_bytes": path.stat().st_size, "format": fmt, "kind": export.get("kind", "ensemble"),
        "contract": info.contract.to_dict(), "members": list(info.members), "zeta": list(info.zeta),
        "provenance": source if isinstance(source := info.provenance.get("source"), dict) else {},
        "source": info.source,
        "graph": {**graph, "precision": info.precision, "batch": info.batch.to_dict()}, "export": export,
    }
