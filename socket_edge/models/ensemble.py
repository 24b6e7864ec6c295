"""The ζ-weighted ensemble F(x) = Σ_k ζ_k softmax(g_k(f_k(normalise(x)))) (SOCKET eq. 4).

A single source model is an ensemble of one (ζ = [1]), so evaluation, export and
the runtime handle one kind of model."""

from __future__ import annotations

import torch
from torch import nn

from socket_edge.contract import InputContract
from socket_edge.errors import ContractError
from socket_edge.models.input_module import InputNormalizer
from socket_edge.models.zoo import SourceModel


class Ensemble(nn.Module):
    """Raw frames in contract units → class probabilities (N×classes)."""

    def __init__(self, contract: InputContract, members: list[SourceModel], zeta: list[float] | torch.Tensor) -> None:
        super().__init__()
        zeta = torch.as_tensor(zeta, dtype=torch.float32).flatten()
        if len(members) == 0 or len(zeta) != len(members):
            raise ContractError(f"an ensemble needs one ζ per member: {len(members)} members, {len(zeta)} weights")
        if (zeta < 0).any() or not zeta.sum() > 0:
            raise ContractError(f"ζ must be non-negative with a positive sum, got {zeta.tolist()}")
        for member in members:
            if member.config.num_classes != len(contract.class_names):
                raise ContractError(
                    f"a {member.config.arch} member has {member.config.num_classes} outputs but the contract "
                    f"names {len(contract.class_names)} classes"
                )
        self.contract = contract
        self.input = InputNormalizer(contract)
        self.members = nn.ModuleList(members)
        self.register_buffer("zeta", zeta / zeta.sum())

    def with_contract(self, contract: InputContract) -> "Ensemble":
        """The same members and ζ behind another input contract (e.g. a cross-modal target)."""
        return Ensemble(contract, list(self.members), self.zeta.clone())

    def member_logits(self, raw: torch.Tensor) -> list[torch.Tensor]:
        """Each member's logits g_k(f_k(x))."""
        x = self.input(raw)
        return [member(x) for member in self.members]

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        probs = [torch.softmax(logits, dim=1) for logits in self.member_logits(raw)]
        return sum(z * p for z, p in zip(self.zeta, probs))
