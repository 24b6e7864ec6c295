"""Make an Ensemble graph-ready: fold every BatchNorm into the layer before it and bake the
weight-normalised classifier into a plain Linear, on a copy (the loaded model is not changed).

BatchNorm is folded only where its input is certainly the conv/linear output: consecutive
children of an nn.Sequential (torchvision's Conv2dNormActivation, MobileNetV2's last
projection, ResNet's downsample, the paper head's Linear → BatchNorm1d) and the convN/bnN
pairs of torchvision's ResNet blocks, whose forward is bnN(convN(x)). Anything else is left
as it is; the exporter counts the BatchNormalization nodes left in the graph."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import fusion, parametrize
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from socket_edge.models.ensemble import Ensemble
from socket_edge.models.zoo import build

_PAIRED = (BasicBlock, Bottleneck, ResNet)  # forward applies bnN right after convN


def _fused(layer: nn.Module, bn: nn.Module) -> nn.Module | None:
    """The layer with `bn` folded in, or None when the pair is not one we fold."""
    if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) or not bn.track_running_stats:
        return None
    if isinstance(layer, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.num_features == layer.out_channels:
        return fusion.fuse_conv_bn_eval(layer, bn)
    if isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d) and bn.num_features == layer.out_features:
        return fusion.fuse_linear_bn_eval(layer, bn)
    return None


def fold_batchnorm(model: nn.Module) -> int:
    """Fold BatchNorm layers into the preceding conv/linear, in place (eval mode). Returns how many."""
    model.eval()
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            named = list(module.named_children())
            pairs = list(zip(named, named[1:]))
        elif isinstance(module, _PAIRED):
            pairs = [((f"conv{i}", getattr(module, f"conv{i}")), (f"bn{i}", getattr(module, f"bn{i}")))
                     for i in (1, 2, 3) if hasattr(module, f"conv{i}") and hasattr(module, f"bn{i}")]
        else:
            continue
        for (layer_name, layer), (bn_name, bn) in pairs:
            fused = _fused(layer, bn)
            if fused is not None:
                setattr(module, layer_name, fused)
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded


def bake_weight_norm(model: nn.Module) -> int:
    """Replace weight-norm parametrizations by their current weight, in place. Returns how many."""
    baked = 0
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                baked += 1
    return baked


def graph_ready(model: Ensemble) -> tuple[Ensemble, int]:
    """A folded copy of the ensemble for export, and how many BatchNorm layers were folded.

    The copy is rebuilt from each member's config and state dict: copy.deepcopy would share the
    parametrized classes that weight norm creates, and baking the copy would break the original."""
    members = []
    for member in model.members:
        fresh = build(member.config)
        fresh.load_state_dict(member.state_dict())
        members.append(fresh)
    folded_model = Ensemble(model.contract, members, model.zeta.clone()).eval()
    folded = fold_batchnorm(folded_model)
    bake_weight_norm(folded_model)
    for param in folded_model.parameters():
        param.requires_grad_(False)
    return folded_model, folded
