"""A command claims its output before any work: the output (and every folder it writes beside it,
such as a trainer's run folder) is none of its inputs, lies inside none of them and holds none
of them (resolved paths, symlinks and hard links alike; not even with --overwrite), no other
process is writing it, and an existing file is replaced only with --overwrite.

"No other process" is an OS lock (fcntl.flock) on `.NAME.lock` beside the output: the kernel
releases it when its process ends, however it ends. The file holds the holder's pid and command
line, for the message of the process that finds it locked. Standard library only (`run --save`
claims its video without torch)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from socket_edge.errors import OutputError, UsageError

Inputs = Mapping[str, Path | str | Sequence[Path] | None]  # the input's name in messages → its path(s)


def lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def _paths(given: Path | str | Sequence[Path] | None) -> list[Path]:
    return [Path(p) for p in ([given] if isinstance(given, (str, Path)) else given or ())]


def _resolved(path: Path) -> Path:
    """`path` with its symlinks followed (as written where they loop: the reader says so)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return Path(os.path.abspath(path))


def overlap(out: Path, path: Path) -> str | None:
    """How output `out` meets input `path`: "is", "lies inside" (an input folder), "holds" (an
    output folder holding the input), or None. Paths are compared resolved (symlinks followed),
    files also by identity (a hard link)."""
    mine, theirs = _resolved(out), _resolved(path)
    if mine == theirs or (out.exists() and path.exists() and os.path.samefile(out, path)):
        return "is"
    if theirs in mine.parents:
        return "lies inside"
    if mine in theirs.parents:
        return "holds"
    return None


def refuse_inputs(out: Path, inputs: Inputs, flag: str, folders: Sequence[Path] = ()) -> None:
    """A UsageError when `out`, or one of the `folders` the command writes beside it, is one of
    `inputs`, lies inside one, or holds one."""
    for output in [Path(out), *map(Path, folders)]:
        for name, given in inputs.items():
            for path in _paths(given):
                how = overlap(output, path)
                if how is None:
                    continue
                what = f"{flag} {out}" if output == Path(out) else f"{output}, the folder {flag} {out} writes,"
                relation = {"is": "is also", "lies inside": "lies inside", "holds": "holds"}[how]
                raise UsageError(f"{what} {relation} an input of this command ({name} {path}); choose another "
                                 f"{flag}: an input is never overwritten, not even with --overwrite")


@contextmanager
def locked(out: Path, command: str) -> Iterator[None]:
    """Hold the lock on `out` for the block; an OutputError naming the holder when another process has it."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutputError(f"{out} is being written by {holder}; wait for it to finish, or choose another "
                              "output") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # its holder removed it between our open and our lock
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} ({command})\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def claimed(out: Path, inputs: Inputs, *, overwrite: bool, command: str, flag: str = "--out",
            folders: Sequence[Path] = ()) -> Iterator[None]:
    """Claim `out` and the `folders` written beside it (a run folder) for the block: refuse an
    input, take their locks, refuse an existing file unless `overwrite`."""
    out = Path(out)
    refuse_inputs(out, inputs, flag, folders)
    with ExitStack() as stack:
        for path in [out, *map(Path, folders)]:
            stack.enter_context(locked(path, command))
        if out.exists() and not overwrite:
            raise UsageError(f"{flag} {out} already exists; pass --overwrite to replace it, or choose another {flag}")
        yield
