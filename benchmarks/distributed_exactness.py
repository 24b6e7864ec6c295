"""Is a torchrun step the one-process step? (issue 14 §4). In float64, where rounding cannot hide
a mistake, one training step of a ResNet-18 encoder with a BatchNorm bottleneck (the adapt
members' layout) on a batch of 8, loss = information maximisation of its softmax plus the
squared-difference L_d of its first BatchNorm layer's batch statistics, run by one process
with PyTorch's BatchNorm and by 2 gloo ranks of 4 images each (global-batch BatchNorm, DDP, the
L_div and L_d statistics from all-reduced sums). Prints the largest relative gradient difference,
and, as a control, that of a per-rank approximation (each rank's BatchNorm, L_div and L_d on its
own 4 images, DDP averaging the gradients).

    .venv/bin/python benchmarks/distributed_exactness.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from socket_edge.models.zoo import ModelConfig, build
from socket_edge.training import distributed

EPS = 1e-12
PER_RANK = os.environ.get("EXACTNESS_PER_RANK") == "1"


def model() -> nn.Module:
    torch.manual_seed(0)
    return build(ModelConfig("resnet18", 3, "paper"), None).double().train()


def loss(forward: nn.Module, member: nn.Module, x: torch.Tensor, total: int) -> torch.Tensor:
    """The objective of this process's share `x` of a global batch of `total` (`forward`: the
    member or its DDP wrapper)."""
    recorded = []
    first = next(m for m in member.encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    hook = first.register_forward_pre_hook(lambda m, inputs: recorded.append(inputs[0]))
    probs = torch.softmax(forward(x), dim=1)
    hook.remove()
    l_ent = -(probs * torch.log(probs + EPS)).sum(dim=1).mean()
    mean = (distributed.global_sum(probs.sum(dim=0)) / total) if not PER_RANK else probs.mean(dim=0)
    l_div = -(mean * torch.log(mean + EPS)).sum()
    if distributed.active() and not PER_RANK:
        mu, var, n = distributed.moments(recorded[0], first.running_mean)
        var = var * n / (n - 1)
    else:
        mu, var = recorded[0].mean(dim=(0, 2, 3)), recorded[0].var(dim=(0, 2, 3), unbiased=True)
    l_d = (mu ** 2).sum() + ((var - 1) ** 2).sum()
    return l_ent - l_div + 0.1 * l_d


def step(out: Path) -> None:
    x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if distributed.size() == 1:
        member = model()
        loss(member, member, x, 8).backward()
    else:
        device = distributed.join(torch.device("cpu"))
        member = model() if PER_RANK else distributed.sync_batchnorm(model(), device)
        net = distributed.parallel(member, device)
        loss(net, member, x[distributed.rank()::2], 8).backward()
    if distributed.is_main():
        torch.save({k: p.grad for k, p in member.named_parameters() if p.grad is not None}, out)


def main() -> None:
    if os.environ.get("EXACTNESS_OUT"):
        step(Path(os.environ["EXACTNESS_OUT"]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        grads = {}
        for name, launcher, per_rank in (
                ("one", [sys.executable], "0"),
                ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"], "0"),
                ("per-rank", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
                 "1")):
            out = Path(tmp) / f"{name}.pt"
            subprocess.run([*launcher, __file__], env={**os.environ, "EXACTNESS_OUT": str(out),
                                                       "EXACTNESS_PER_RANK": per_rank},
                           check=True, stderr=subprocess.DEVNULL)
            grads[name] = torch.load(out, weights_only=True)
    a = grads["one"]
    for name in ("two", "per-rank"):
        b = grads[name]
        worst = max(((a[k] - b[k]).norm() / (a[k].norm() + 1e-30)).item() for k in a if a[k].norm() > 1e-9)
        print(f"{name}: {len(a)} parameter gradients; largest relative difference from one process (float64): "
              f"{worst:.1e}")

if __name__ == "__main__":
    main()
