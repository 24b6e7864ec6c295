"""Data layout: class folders ROOT/<class>/<file>, unlabeled target folders, and
task-irrelevant (TI) pairs matched by relative path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socket_edge.contract import InputContract
from socket_edge.data.images import IMAGE_SUFFIXES, is_image
from socket_edge.data.preprocess import check_class_names
from socket_edge.errors import DataError


@dataclass(frozen=True)
class ImageList:
    """Image files with optional labels (index into class_names; -1 = unlabeled)."""

    root: Path
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    def summary(self) -> dict:
        """Counts per class, for provenance and logs."""
        counts = {name: 0 for name in self.class_names}
        for label in self.labels:
            if label >= 0:
                counts[self.class_names[label]] += 1
        return {"root": str(self.root), "images": len(self.files), "per_class": counts}


def _check_root(root: Path, what: str) -> None:
    if not root.exists():
        raise DataError(f"{what} folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"{what} {root} is not a folder; expected ROOT/<class>/<image>")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_image(p))


def class_folders(root: str | Path, what: str = "data", classes: list[str] | tuple[str, ...] | None = None) -> ImageList:
    """Scan ROOT/<class>/<image> (images may sit deeper). Classes sorted by name; `classes`
    picks some of the class folders and ignores the others."""
    root = Path(root)
    _check_root(root, what)
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes:
        missing = sorted(set(classes) - {p.name for p in found})
        if missing:
            raise DataError(
                f"{what} folder {root} has no class folder {', '.join(missing)} "
                f"(found: {', '.join(p.name for p in found) or 'none'})"
            )
        found = [p for p in found if p.name in set(classes)]
    classes = found
    if not classes:
        if _images_in(root):
            raise DataError(f"{what} folder {root} has images but no class folders; expected {root}/<class>/<image>")
        raise DataError(f"{what} folder {root} is empty; expected class folders {root}/<class>/<image>")
    files: list[Path] = []
    labels: list[int] = []
    for index, folder in enumerate(classes):
        found = _images_in(folder)
        if not found:
            raise DataError(
                f"class folder {folder} has no images ({', '.join(IMAGE_SUFFIXES[:4])}, …); add images or remove the folder"
            )
        files += found
        labels += [index] * len(found)
    return ImageList(root, tuple(files), tuple(labels), tuple(p.name for p in classes))


def unlabeled_images(root: str | Path, what: str = "target") -> ImageList:
    """All images under ROOT, flat or in class folders; labels kept only for evaluation."""
    root = Path(root)
    _check_root(root, what)
    if any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
        return class_folders(root, what)
    files = _images_in(root)
    if not files:
        raise DataError(f"{what} folder {root} is empty; expected images in {root} or {root}/<class>/")
    return ImageList(root, tuple(files), tuple([-1] * len(files)), ())


def contract_labels(images: ImageList, contract: InputContract, what: str) -> np.ndarray:
    """Labels of class-folder images as indices into the contract's class names, refusing class
    folders the model does not know."""
    check_class_names(contract.class_names, images.class_names, what)
    return np.array([contract.class_names.index(images.class_names[i]) for i in images.labels], dtype=np.int64)


@dataclass(frozen=True)
class TIPairs:
    """Task-irrelevant pairs: the same scene in the source and the target modality."""

    source: ImageList
    target: ImageList

    def __len__(self) -> int:
        return len(self.source)


def ti_pairs(source_root: str | Path, target_root: str | Path,
             classes: list[str] | tuple[str, ...] | None = None) -> TIPairs:
    """Pair files under two roots by relative path without extension (class folders optional;
    `classes` keeps only those class folders).

    A file on either side without its partner is an error naming the file."""
    src_root, tgt_root = Path(source_root), Path(target_root)
    _check_root(src_root, "TI source")
    _check_root(tgt_root, "TI target")
    src = _by_stem(src_root, "TI source", classes)
    tgt = _by_stem(tgt_root, "TI target", classes)
    for key in sorted(set(src) - set(tgt)):
        raise DataError(
            f"TI source file {src[key]} has no partner under {tgt_root} "
            f"(expected {tgt_root / key}.<ext>); add it or remove the unpaired file"
        )
    for key in sorted(set(tgt) - set(src)):
        raise DataError(
            f"TI target file {tgt[key]} has no partner under {src_root} "
            f"(expected {src_root / key}.<ext>); add it or remove the unpaired file"
        )
    keys = sorted(src)
    names = tuple(sorted({k.split("/")[0] for k in keys if "/" in k}))
    labels = tuple(names.index(k.split("/")[0]) if "/" in k else -1 for k in keys)
    return TIPairs(
        ImageList(src_root, tuple(src[k] for k in keys), labels, names),
        ImageList(tgt_root, tuple(tgt[k] for k in keys), labels, names),
    )


def check_ti_disjoint(ti: TIPairs, task_classes: tuple[str, ...] | list[str]) -> None:
    """TI data must not contain the task's classes (that would be task-relevant source data)."""
    overlap = sorted(set(ti.source.class_names) & set(task_classes))
    if overlap:
        raise DataError(
            f"TI pairs under {ti.source.root} contain task classes {', '.join(overlap)}; "
            "TI data must be of other classes: move those folders out of the TI roots"
        )


def _by_stem(root: Path, what: str, classes: list[str] | tuple[str, ...] | None = None) -> dict[str, Path]:
    files = _images_in(root)
    if classes:
        present = {p.name for p in root.iterdir() if p.is_dir()}
        missing = sorted(set(classes) - present)
        if missing:
            raise DataError(f"{what} folder {root} has no class folder {', '.join(missing)}")
        files = [p for p in files if p.relative_to(root).parts[0] in set(classes)]
    if not files:
        raise DataError(f"{what} folder {root} is empty; expected images paired by relative path")
    out: dict[str, Path] = {}
    for path in files:
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in out:
            raise DataError(f"{what} has two files for one pair: {out[key]} and {path}; keep one")
        out[key] = path
    return out
