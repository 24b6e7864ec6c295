"""What an input IS, not where it is: wherever a result is reused or resumed (adapt --resume,
distill --resume, a finished candidate of adapt --select auto), its inputs are compared by
content. A model file by its SHA-256; an image folder by the relative path, size and modification
time of every image in it (what the frame cache keys on too), so retraining a source at the same
path, or adding, replacing or touching a target image, is noticed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from socket_edge.data.images import is_image

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256:<hex> of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def folder_digest(root: Path) -> str:
    """files:<n>:<hex>: a hash of every image's relative path, size and mtime under `root`."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if is_image(p)):
        stat = path.stat()
        entries.append(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return f"files:{len(entries)}:" + hashlib.sha256("\n".join(entries).encode("utf-8")).hexdigest()


def content_id(path: Path | str | None) -> str | None:
    """The identity of an input path (None for none given, "missing" for a path that is not there:
    its reader names the problem)."""
    if path is None:
        return None
    path = Path(path)
    try:
        if path.is_dir():
            return folder_digest(path)
        if path.is_file():
            return file_digest(path)
    except OSError:  # unreadable: the stage that reads it says why
        return "unreadable"
    return "missing"


def identities(inputs: Mapping[str, Path | str | list | None]) -> dict[str, str | list | None]:
    """name → content_id for each input (a list of paths gives a list)."""
    return {name: [content_id(p) for p in given] if isinstance(given, (list, tuple)) else content_id(given)
            for name, given in inputs.items()}


def changed(started: Mapping | None, now: Mapping) -> list[str]:
    """The names of the inputs whose identity differs between `started` and `now` (a list input:
    '--source 2' for its second path); none when nothing was recorded (no earlier run)."""
    if started is None:
        return []
    found = []
    for name, value in now.items():
        then = started.get(name)
        if isinstance(value, list) and isinstance(then, list) and len(value) == len(then):
            found += [f"{name} {i + 1}" for i, (a, b) in enumerate(zip(then, value)) if a != b]
        elif then != value:
            found.append(name)
    return found
