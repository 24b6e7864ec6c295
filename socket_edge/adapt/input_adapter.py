"""The input adapter of `--ti-adapter`: a small translation module in front of each encoder that the
cross-modal terms (L_TI, L_d) train while the encoders learn from the target terms alone (after Zhu,
Chen, Wang, IEEE TIP 2025, arXiv 2401.05014: a translation module guided by the TI pairs).

It is a 1×1 convolution without bias on the normalised input, initialised to the identity: a linear
mix of the input channels per pixel. Linear, so it folds EXACTLY into the encoder's first
convolution, zero padding included (A·0 = 0): the artifact holds plain members, and export, eval and
run are unchanged. (A bias, or a BatchNorm after it, would not fold exactly at the zero-padded
borders.) With depth/IR replicated to three channels whose means and stds differ, the mix is an
affine map of the single raw channel per output channel, so it still scales and shifts."""

from __future__ import annotations

import torch
from torch import nn


class InputAdapter(nn.Module):
    """N×C×H×W → N×C×H×W, y[:, j] = Σ_i A[j, i] x[:, i]; A starts as the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(channels)[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(x)


def first_conv(encoder: nn.Module) -> nn.Conv2d:
    """The convolution that reads the encoder's input (the first registered Conv2d, as in every
    architecture of models/zoo.py); refused where it cannot take a fold."""
    conv = next((m for m in encoder.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.groups != 1:
        raise ValueError("the input adapter folds into a first convolution with groups=1; this encoder has none")
    return conv


def input_channels(encoder: nn.Module) -> int:
    """How many channels the encoder reads."""
    return first_conv(encoder).in_channels


@torch.no_grad()
def fold_adapter(encoder: nn.Module, adapter: InputAdapter) -> None:
    """encoder(adapter(x)) == encoder'(x), in place: W'[o, i] = Σ_j W[o, j] · A[j, i]."""
    conv = first_conv(encoder)
    mix = adapter.mix.weight[:, :, 0, 0].to(conv.weight)
    conv.weight.copy_(torch.einsum("ojhw,ji->oihw", conv.weight, mix))
