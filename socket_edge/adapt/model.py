"""The ensemble while it adapts: encoders f_k trained, classifiers g_k frozen, mixing
weights ζ_k = sigmoid(w_k) / Σ_j sigmoid(w_j) or softmax(w)_k (equal at the start), BatchNorm
statistics of the target batch recorded for L_d, the encoders' dropout off; and its mean teacher."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call

from socket_edge.adapt.bn_alignment import aligned_layers
from socket_edge.adapt.input_adapter import InputAdapter, fold_adapter, input_channels
from socket_edge.contract import InputContract
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.input_module import InputNormalizer
from socket_edge.models.zoo import SourceModel
from socket_edge.training import distributed

Stats = list[tuple[torch.Tensor, torch.Tensor]]


def _bn_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def running_stats(member: SourceModel, scope: str = "conv") -> Stats:
    """A detached copy of (running_mean, running_var) of the encoder's BN layers that L_d matches
    (bn_alignment.aligned_layers)."""
    return [(bn.running_mean.detach().clone(), bn.running_var.detach().clone())
            for bn in aligned_layers(member.encoder, scope)]


class AdaptiveEnsemble(nn.Module):
    """Members with frozen classifiers and learnable ζ; forward gives features and probabilities.
    With `adapter`, each member reads its input through an InputAdapter that only the cross-modal
    terms train (see forward). `bn_scope`: the BN layers whose batch statistics are recorded for L_d
    (bn_alignment.aligned_layers). The encoders' Dropout layers stay in eval mode (off) in training
    too unless `dropout` (the earlier behaviour): MobileNetV2 keeps a Dropout(0.2) before its
    classifier, inside our encoder, which would perturb the features L_TI compares with ψ (computed
    without it); the paper's ResNet-50 encoder has none."""

    def __init__(self, contract: InputContract, members: list[SourceModel], learn_zeta: bool,
                 zeta_param: str = "sigmoid", ti_bn: str = "batch", adapter: bool = False,
                 bn_scope: str = "conv", dropout: bool = False) -> None:
        super().__init__()
        self.contract = contract
        self.zeta_param = zeta_param
        self.ti_bn = ti_bn
        self.bn_scope = bn_scope
        self.dropout = dropout
        self.input = InputNormalizer(contract)
        self.members = nn.ModuleList(members)
        self.adapters = nn.ModuleList([InputAdapter(input_channels(m.encoder)) for m in members]) if adapter else None
        self.w = nn.Parameter(torch.zeros(len(members)), requires_grad=learn_zeta)
        for member in members:
            member.classifier.requires_grad_(False)
        self._recorded: list[Stats] | None = None
        self._bn = [_bn_layers(m.encoder) for m in members]
        for k, layers in enumerate(self._bn):
            for bn in layers:
                bn.register_forward_pre_hook(self._make_hook(k))

    def train(self, mode: bool = True) -> AdaptiveEnsemble:
        """As nn.Module.train, with the encoders' dropout kept off unless asked for."""
        super().train(mode)
        if not self.dropout:
            for member in self.members:
                for m in member.encoder.modules():
                    if isinstance(m, nn.modules.dropout._DropoutNd):
                        m.eval()
        return self

    def _make_hook(self, k: int):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
            # "conv": only the layers after convolutions (4-D inputs; under torchrun the layers'
            # classes are replaced, so their input, not their type, tells), as aligned_layers says
            if self._recorded is None or (self.bn_scope == "conv" and inputs[0].dim() != 4):
                return
            if distributed.active():  # the global batch's statistics, as SyncBatchNorm sees them
                mean, var, n = distributed.moments(inputs[0], module.running_mean)
                self._recorded[k].append((mean.float(), var * n / (n - 1)))
                return
            x = inputs[0].float()
            dims = [0] + list(range(2, x.dim()))
            self._recorded[k].append((x.mean(dim=dims), x.var(dim=dims, unbiased=True)))
        return hook

    def zeta(self) -> torch.Tensor:
        """ζ = sigmoid(w) / Σ sigmoid(w) (the paper's) or softmax(w): positive, sums to 1."""
        if self.zeta_param == "softmax":
            return torch.softmax(self.w, dim=0)
        s = torch.sigmoid(self.w)
        return s / s.sum()

    def encode(self, raw: torch.Tensor, route: str = "all") -> list[torch.Tensor]:
        """Raw frames → features f_k(a_k(x)) per member (a_k the adapter, when there is one).
        `route` says which weights the gradient reaches: "all", "encoders" (the adapters'
        output detached) or "adapters" (the encoders' parameters detached)."""
        x = self.input(raw)
        if self.adapters is None:
            return [m.encoder(x) for m in self.members]
        out = []
        for member, adapter in zip(self.members, self.adapters):
            a = adapter(x)
            if route == "encoders":
                out.append(member.encoder(a.detach()))
            elif route == "adapters":
                params = {n: p.detach() for n, p in member.encoder.named_parameters()}
                out.append(functional_call(member.encoder, params, (a,)))
            else:
                out.append(member.encoder(a))
        return out

    def forward(self, raw: torch.Tensor, ti: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor] | None]:
        """Raw frames → (features f_k(x) per member, softmax(g_k(f_k(x))) per member, and the
        features of the TI target frames `ti` when given). The TI pass is never recorded for L_d
        and normalises as `ti_bn` says ("batch": its own statistics, the running ones untouched;
        "running": the running statistics). One call per step, as DDP wants.

        With adapters, the cross-modal terms train the adapters alone and the target terms the
        encoders alone: the features returned (for L_ent, L_div, L_pl) come through detached
        adapters; the BatchNorm statistics recorded for L_d come from a second pass of the batch
        through detached encoder weights (leaving every running statistic untouched), and the TI
        features (for L_TI) through detached encoder weights too."""
        recorded = self._recorded
        if self.adapters is not None and recorded is not None:
            self._recorded = None  # the main pass trains the encoders; L_d's statistics come below
        try:
            feats = self.encode(raw, "encoders")
            if self.adapters is not None and recorded is not None:
                self._recorded = recorded
                with self.frozen_bn_stats():
                    self.encode(raw, "adapters")
        finally:
            self._recorded = recorded
        probs = [torch.softmax(m.classifier(f).float(), dim=1) for m, f in zip(self.members, feats)]
        if ti is None:
            return feats, probs, None
        self._recorded = None
        try:
            with self.running_bn_stats() if self.ti_bn == "running" else self.frozen_bn_stats():
                ti_feats = self.encode(ti, "adapters")
        finally:
            self._recorded = recorded
        return feats, probs, ti_feats

    def mix(self, probs: list[torch.Tensor]) -> torch.Tensor:
        """F_T(x) = Σ_k ζ_k p_k (SOCKET eq. 4)."""
        zeta = self.zeta()
        return sum(z * p for z, p in zip(zeta, probs))

    @contextmanager
    def recording_bn_stats(self) -> Iterator[list[Stats]]:
        """Within the block, each BN layer's input batch mean and (unbiased) variance are
        collected per member, in layer order."""
        self._recorded = [[] for _ in self.members]
        try:
            yield self._recorded
        finally:
            self._recorded = None

    @contextmanager
    def frozen_bn_stats(self) -> Iterator[None]:
        """Batches in the block are normalised with their own statistics (train mode) but
        leave every running statistic untouched (momentum 0, counters restored): TI batches
        must never pollute the running statistics."""
        saved = [(bn, bn.momentum, bn.num_batches_tracked.clone()) for layers in self._bn for bn in layers]
        for bn, _, _ in saved:
            bn.momentum = 0.0
        try:
            yield
        finally:
            for bn, momentum, count in saved:
                bn.momentum = momentum
                bn.num_batches_tracked.copy_(count)

    @contextmanager
    def running_bn_stats(self) -> Iterator[None]:
        """Within the block, BatchNorm layers normalise with their running statistics (eval mode)
        and update nothing; the rest of the network keeps its mode."""
        layers = [bn for group in self._bn for bn in group]
        modes = [bn.training for bn in layers]
        for bn in layers:
            bn.eval()
        try:
            yield
        finally:
            for bn, mode in zip(layers, modes):
                bn.train(mode)

    def teacher(self) -> AdaptiveEnsemble:
        """A copy with the same weights and ζ, nothing trainable: the start of a mean teacher."""
        copy_ = AdaptiveEnsemble(self.contract, [copy.deepcopy(m) for m in self.members], False, self.zeta_param,
                                 self.ti_bn, adapter=self.adapters is not None, bn_scope=self.bn_scope,
                                 dropout=self.dropout)
        copy_.load_state_dict(self.state_dict())
        copy_.requires_grad_(False)
        return copy_.to(self.w.device)

    @torch.no_grad()
    def follow(self, student: AdaptiveEnsemble, decay: float) -> None:
        """Mean-teacher step: parameters ← decay·self + (1 − decay)·student; buffers (BN running
        statistics) copied from the student."""
        for mine, theirs in zip(self.parameters(), student.parameters()):
            mine.lerp_(theirs.detach(), 1 - decay)
        for mine, theirs in zip(self.buffers(), student.buffers()):
            mine.copy_(theirs)

    def to_ensemble(self) -> Ensemble:
        """The adapted ζ-weighted ensemble, for the artifact: the adapters, if any, folded into a copy
        of each member's first convolution (the same function, plain members)."""
        members = list(self.members)
        if self.adapters is not None:
            members = [copy.deepcopy(m) for m in members]
            for member, adapter in zip(members, self.adapters):
                fold_adapter(member.encoder, adapter)
        return Ensemble(self.contract, members, self.zeta().detach().cpu())
