"""Where collected frames go, in the layouts `adapt` and `eval` read:

    --as ti --class C     OUT/rgb/C/NNNNNN.png + OUT/depth/C/NNNNNN.png (or OUT/ir/C/…)   adapt --ti-source/--ti-target
    --as target           OUT/NNNNNN.png (depth or infrared only)                          adapt --target
    --as eval --class C   OUT/C/NNNNNN.png                                                 eval --data, adapt --eval-data

Numbering continues after the files already there; every file is written atomically, and a pair
whose second file fails leaves neither."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from socket_edge import atomic
from socket_edge.data.images import is_image
from socket_edge.errors import DataError, UsageError

ROLES = ("ti", "target", "eval")
FOLDER = {"depth": "depth", "infrared": "ir"}  # the target modality's folder name in a TI layout


SHAPES = {"ti": "rgb/CLASS/ beside depth/CLASS/ or ir/CLASS/", "target": "images directly in it",
          "eval": "CLASS/ folders of images"}


def _visible(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []


def roles_in(out: Path) -> set[str]:
    """The roles whose layout the folder `out` already holds: "target" (images in it), "ti"
    (rgb/, depth/ or ir/ holding class folders), "eval" (any other folder holding images)."""
    roles = set()
    for entry in _visible(out):
        if is_image(entry):
            roles.add("target")
        elif entry.is_dir() and entry.name in ("rgb", *FOLDER.values()) and \
                any(p.is_dir() for p in _visible(entry)):
            roles.add("ti")
        elif entry.is_dir() and any(is_image(p) for p in _visible(entry)):
            roles.add("eval")
    return roles


def png(image: np.ndarray) -> bytes:
    """PNG bytes of an H×W (8/16-bit) or H×W×3 RGB image."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"cannot encode a {image.shape} {image.dtype} frame as PNG")
    return data.tobytes()


def describe_pixels(image: np.ndarray) -> str:
    """'colour', '16-bit' or '8-bit': what a written image holds, for messages."""
    return "colour" if image.ndim == 3 else f"{image.dtype.itemsize * 8}-bit"


@dataclass(frozen=True)
class Layout:
    """The output of one collect run: OUT, its role (ti|target|eval), the target stream, the class."""

    out: Path
    role: str
    stream: str
    class_name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise UsageError(f"--as must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.role in ("ti", "eval") and not self.class_name:
            raise UsageError(f"--as {self.role} needs --class NAME (the folder its frames go into)")
        if self.role == "target" and self.class_name:
            raise UsageError("--as target writes unlabeled frames into one flat folder: drop --class, or use "
                             "--as eval for a labelled set")
        name = self.class_name
        if name is not None and (not name.strip() or name.startswith(".") or "/" in name or "\\" in name):
            raise UsageError(f"--class {name!r} must be a plain folder name (no slashes, not starting with '.')")

    @property
    def target_folder(self) -> Path:
        if self.role == "ti":
            return self.out / FOLDER[self.stream] / self.class_name
        return self.out / self.class_name if self.role == "eval" else self.out

    @property
    def rgb_folder(self) -> Path | None:
        return self.out / "rgb" / self.class_name if self.role == "ti" else None

    def check_folders(self) -> None:
        """Refuse an output laid out for another role or modality (before the camera starts)."""
        found = roles_in(self.out) - {self.role}
        if found:
            role = sorted(found)[0]
            raise DataError(f"{self.out} is laid out for --as {role} ({SHAPES[role]}); --as {self.role} writes "
                            f"{SHAPES[self.role]}: collect into another --out (one folder, one role)")
        if self.role == "ti":
            other = self.out / FOLDER["infrared" if self.stream == "depth" else "depth"]
            if other.exists():
                raise DataError(f"{self.out} holds {other.name}/ pairs; collect {self.stream} pairs into another "
                                f"--out (one TI folder pairs rgb/ with one modality)")

    def check_pixels(self, target: np.ndarray) -> None:
        """Refuse an output whose images are of another kind than `target` (this run's first frame)."""
        existing = self._first_existing()
        if existing is None:
            return
        image = cv2.imread(str(existing), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"{existing} cannot be decoded as an image; remove it or choose another --out")
        if image.ndim != target.ndim or image.dtype != target.dtype:
            raise DataError(f"{existing} is {describe_pixels(image)} but this {self.stream} stream gives "
                            f"{describe_pixels(target)} frames; choose another --out (one folder, one modality)")

    def _first_existing(self) -> Path | None:
        """One image already in the output where this run's target frames go (or their siblings)."""
        pattern = {"ti": f"{FOLDER[self.stream]}/*/*.png", "target": "*.png", "eval": "*/*.png"}[self.role]
        return next(iter(sorted(self.out.glob(pattern))), None)

    def next_number(self) -> int:
        """One past the highest NNNNNN of the files already in this run's folders (0 when none)."""
        numbers = [int(p.stem) for folder in (self.target_folder, self.rgb_folder) if folder is not None
                   for p in folder.glob("*.png") if p.stem.isdigit()]
        return max(numbers, default=-1) + 1

    def write(self, number: int, colour: np.ndarray, target: np.ndarray) -> None:
        """Write frame `number` (the target; for TI the colour frame too), each file atomically; a
        failure or Ctrl-C between the two files removes the first."""
        name = f"{number:06d}.png"
        written = atomic.write_bytes(self.target_folder / name, [png(target)])
        if self.rgb_folder is None:
            return
        try:
            atomic.write_bytes(self.rgb_folder / name, [png(colour)])
        except BaseException:
            written.unlink(missing_ok=True)
            raise

    def counts(self) -> dict[str, int]:
        """Files per class now in the output ({'': n} for a flat target folder)."""
        if self.role == "target":
            return {"": len(list(self.out.glob("*.png")))}
        root = self.out / FOLDER[self.stream] if self.role == "ti" else self.out
        return {p.name: len(list(p.glob("*.png"))) for p in sorted(root.glob("*")) if p.is_dir()
                and not p.name.startswith(".")}
