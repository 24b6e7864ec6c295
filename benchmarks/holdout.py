"""The fixed 20 % hold-out of a target folder (issue 17): the files validators.holdout picks by
their paths, as class folders of symbolic links, so that a benchmark adapts on the rest and
measures the inductive accuracy on frames no adaptation saw."""

from __future__ import annotations

from pathlib import Path


def split_folder(target: Path, root: Path, classes: list[str] | None = None) -> tuple[Path, Path]:
    """(ROOT/adapt, ROOT/held): `target`'s class folders (those of `classes`, else all) split by file;
    links already there are kept, so the split is made once and is the same for every run."""
    from socket_edge.adapt.validators import holdout
    from socket_edge.data.folders import class_folders

    images = class_folders(target, "target", classes)
    keys = [str(f.relative_to(target)) for f in images.files]
    for key, held in zip(keys, holdout(keys)):
        link = root / ("held" if held else "adapt") / key
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((target / key).resolve())
    return root / "adapt", root / "held"
