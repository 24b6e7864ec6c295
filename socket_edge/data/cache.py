"""The frame cache of train-source, adapt and distill: every file of a list decoded once, at the
contract's input size in its raw dtype (uint8 colour and 8-bit IR, uint16 depth and 16-bit IR),
into one memory-mapped `.npy`. Its name is a hash of the file list (paths, sizes, mtimes) and of
the contract fields that shape the pixels, so another list or contract never reuses it; it is
built under a temporary name and renamed into place, so a killed build leaves nothing that is
used (the next build deletes its leftover). Its blocks are allocated on disk before it is mapped,
so a full disk is one line (ENOSPC) and not a SIGBUS on a write to the map. A cache that does not
read back as the frames it should hold (truncated, damaged header) is said to be damaged and built
again. A reused cache is touched; a new build removes the caches beside it unused for UNUSED_DAYS."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from socket_edge.atomic import replacing
from socket_edge.contract import InputContract
from socket_edge.data.images import read_image
from socket_edge.data.preprocess import prepare_raw
from socket_edge.errors import DataError, OutputError
from socket_edge.progress import bar

CACHE_ENV = "SOCKET_EDGE_CACHE"
LAYOUT_VERSION = 1  # bump when prepare_raw changes what a cached frame holds
UNUSED_DAYS = 30  # a new cache removes the caches beside it that no run has used for this long
CACHE_NAME = re.compile(r"frames-[0-9a-f]{32}\.npy")  # the caches' names: the only files it removes


def default_cache_dir() -> Path:
    """$SOCKET_EDGE_CACHE, else $XDG_CACHE_HOME/socket-edge/frames, else ~/.cache/socket-edge/frames."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "socket-edge" / "frames"


def cache_key(files: Sequence[Path], contract: InputContract) -> str:
    """A hash of the files (absolute path, size, mtime) and the contract fields that shape the
    cached pixels (modality, size, resize policy, raw dtype, invalid zeros)."""
    entries = []
    for path in files:
        try:
            stat = Path(path).stat()
        except OSError as exc:
            raise DataError(f"{path} cannot be read: {exc.strerror}") from None
        entries.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    shaping = {"version": LAYOUT_VERSION, "modality": contract.modality, "size": list(contract.size),
               "resize": contract.resize, "raw_dtype": contract.raw_dtype, "invalid_zero": contract.invalid_zero}
    text = json.dumps({"files": entries, "contract": shaping}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def cached_frames(files: Sequence[Path], contract: InputContract, *, cache_dir: str | Path | None = None,
                  desc: str = "decoding", progress: bool = True) -> np.ndarray:
    """N×C×H×W frames of `files` in the contract's raw dtype, memory-mapped read-only from the
    cache in `cache_dir` (default: `default_cache_dir()`); decoded first when no cache matches."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / f"frames-{cache_key(files, contract)}.npy"
    shape, dtype = (len(files), *contract.input_shape), np.dtype(contract.raw_dtype)
    frames = reusable(path, shape, dtype)
    if frames is not None:
        os.utime(path)  # its modification time is its last use, for prune_unused
        return frames
    prune_unused(folder)
    try:
        with replacing(path, any_rank=True) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            try:
                allocate(tmp)
                decode_into(out, files, contract, desc, progress)
                out.flush()
            finally:
                del out
    except OutputError as exc:
        raise OutputError(f"frame cache: {exc}, or pass another --cache-dir") from None
    return np.load(path, mmap_mode="r")


def reusable(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The cache at `path` mapped read-only when it holds frames of `shape` and `dtype` and its
    size is exactly theirs; None when there is none, or (said in one line) when it is damaged."""
    try:
        frames = np.load(path, mmap_mode="r")
        size = path.stat().st_size
    except FileNotFoundError:  # none, or pruned by another run a moment ago: built again
        return None
    except (ValueError, EOFError, OSError) as exc:  # truncated, a damaged or object-dtype header
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    else:
        if frames.shape == shape and frames.dtype == dtype and frames.offset + frames.nbytes == size:
            return frames
        problem = (f"{size} bytes holding {frames.dtype} {frames.shape}, where "
                   f"{dtype} {shape} were expected")
    print(f"frame cache: {path} is damaged ({problem}); decoding the frames again", file=sys.stderr, flush=True)
    return None


def allocate(path: Path) -> None:
    """Give the (sparse) file at `path` its blocks on disk now: a full disk fails here with ENOSPC,
    not later with SIGBUS when a page of the memory map is written."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it: written as mapped
                raise


def prune_unused(folder: Path, days: float = UNUSED_DAYS) -> list[Path]:
    """Remove the caches in `folder` (files named as cached_frames names them, nothing else) that
    no run has used for `days` (they are decoded again if needed), saying so in one line; the
    removed paths. A cache another process has open stays
    readable to it until it closes it."""
    cutoff = time.time() - days * 86400
    removed, freed = [], 0
    for old in folder.glob("frames-*.npy"):
        if not CACHE_NAME.fullmatch(old.name):  # not a name cached_frames gives: the user's, left alone
            continue
        try:
            stat = old.stat()
            if stat.st_mtime < cutoff:
                old.unlink()
                removed.append(old)
                freed += stat.st_size
        except OSError:  # gone meanwhile, or not ours to remove: left as it is
            continue
    if removed:
        print(f"frame cache: removed {len(removed)} cache(s) unused for {days:g} days ({freed / 1e9:.2f} GB) from "
              f"{folder}", file=sys.stderr, flush=True)
    return removed


def decode_into(out: np.ndarray, files: Sequence[Path], contract: InputContract, desc: str, progress: bool) -> None:
    """Decode and prepare every file into `out` on a thread per core (OpenCV releases the GIL
    while it decodes and resizes), in the files' order, with a progress bar."""

    def decode(path: Path) -> np.ndarray:
        return prepare_raw(read_image(path, contract.modality), contract, name=str(path))

    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        frames = pool.map(decode, files)
        for i, frame in enumerate(bar(frames, desc=desc, enabled=progress, total=len(files))):
            out[i] = frame
    finally:
        pool.shutdown(cancel_futures=True)  # a bad file stops the build without decoding the rest
