"""Every file socket-edge writes appears whole or not at all: it is written to `.NAME.<pid>.tmp`
beside its final name and renamed into place. A process killed mid-write leaves its temporary
file behind; the next write of the same output deletes those whose process is gone. A full disk
(or any other failed write) becomes one OutputError naming the file.

Standard library only: the runtime (no torch) writes through it too."""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from socket_edge.errors import OutputError

NO_SPACE = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file would exceed the file-size limit of this process (ulimit -f)",
}


def temporary_path(path: Path, suffix: str = "") -> Path:
    """The temporary name this process writes `path` under; `suffix` for writers that pick the
    format by the file name (a video)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: Path, suffix: str = r"\.tmp(\.[^.]+)?", folders: bool = False) -> list[Path]:
    """Delete the temporary files (or, with `folders`, folders) of `path` left by processes that no
    longer run, named .NAME.PID followed by `suffix` (a regular expression); returns them."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+){suffix}")
    stale = []
    if path.parent.is_dir():
        for entry in path.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match and entry.is_dir() == folders and not process_alive(int(match.group(1))):
                if folders:
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                stale.append(entry)
    return stale


def no_room(path: Path) -> str | None:
    """Why the file `path` can grow no more (its file system has no block left for this user, or
    it has reached this process's file-size limit), in NO_SPACE's words; None while it can. For
    writers that report no failed write (OpenCV's VideoWriter)."""
    try:
        size, free = path.stat().st_size, os.statvfs(path.parent).f_bavail
    except OSError:
        return None
    if free == 0:
        return NO_SPACE[errno.ENOSPC]
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and size >= limit:
        return NO_SPACE[errno.EFBIG]
    return None


def write_error(path: Path, exc: OSError) -> OutputError:
    """One line for a failed write: a full disk names the folder to free; anything else its reason."""
    reason = exc.strerror or str(exc)
    if exc.errno in NO_SPACE:
        return OutputError(f"cannot write {path}: {NO_SPACE[exc.errno]} ({reason}); free space in {path.parent} "
                           "or write elsewhere")
    return OutputError(f"cannot write {path}: {reason}; check that {path.parent} exists and is writable")


@contextmanager
def replacing(path: str | Path, suffix: str = "", any_rank: bool = False) -> Iterator[Path]:
    """A temporary path to write `path` under: renamed onto `path` when the block ends, deleted
    when it fails. Stale temporary files of `path` are deleted first; an OSError of the block or
    the rename becomes an OutputError. In a torchrun job only rank 0 writes outputs (`any_rank`:
    a machine-local file such as the frame cache); another rank's write is a bug and raises."""
    path = Path(path)
    if not any_rank and os.environ.get("RANK", "0") != "0":
        raise RuntimeError(f"rank {os.environ['RANK']} of a torchrun job tried to write {path}: only rank 0 writes")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path)
        tmp = temporary_path(path, suffix)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None


def write_with(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write `path` atomically through `write(file)` (torch.save, savefig, a PIL image)."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


def write_bytes(path: str | Path, chunks: Iterable[bytes]) -> Path:
    """Write byte chunks to `path` atomically."""
    return write_with(path, lambda f: [f.write(chunk) for chunk in chunks])


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return write_bytes(path, [text.encode("utf-8")])
