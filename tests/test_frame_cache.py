"""The frame cache (data/cache.py): raw dtypes at the contract's size, reused when nothing changed,
rebuilt when a file or the contract changed, never used half-written after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from socket_edge.contract import InputContract
from socket_edge.data.cache import cached_frames
from socket_edge.data.images import read_image
from socket_edge.data.preprocess import prepare_raw
from socket_edge.errors import OutputError

from conftest import CLASSES, write_class_folders


def files_of(root: Path) -> list[Path]:
    return sorted(root.rglob("*.png"))


def contract_for(modality: str, size: int = 24) -> InputContract:
    return InputContract.for_modality(modality, CLASSES, size)


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("frames-*.npy"))


@pytest.mark.parametrize("modality, dtype", [("rgb", np.uint8), ("depth", np.uint16)])
def test_frames_are_cached_in_their_raw_dtype_and_reused(tmp_path: Path, modality: str, dtype: type) -> None:
    files = files_of(write_class_folders(tmp_path / modality, modality, per_class=3))
    contract = contract_for(modality)
    frames = cached_frames(files, contract, cache_dir=tmp_path / "cache", progress=False)
    assert frames.dtype == dtype and frames.shape == (len(files), *contract.input_shape)
    expected = np.stack([prepare_raw(read_image(f, modality), contract) for f in files])
    np.testing.assert_array_equal(frames, expected)
    [built] = cache_files(tmp_path / "cache")
    before = built.stat()
    again = cached_frames(files, contract, cache_dir=tmp_path / "cache", progress=False)
    after = built.stat()
    assert after.st_ino == before.st_ino  # not decoded again (a rebuild renames a new file into place)
    assert after.st_mtime_ns >= before.st_mtime_ns  # touched: its modification time is its last use
    assert cache_files(tmp_path / "cache") == [built]
    np.testing.assert_array_equal(again, expected)


def test_a_changed_file_or_contract_builds_another_cache(tmp_path: Path) -> None:
    files = files_of(write_class_folders(tmp_path / "ir", "ir", per_class=2))
    folder = tmp_path / "cache"
    cached_frames(files, contract_for("ir"), cache_dir=folder, progress=False)
    changed = np.full((32, 32), 7, np.uint8)
    cv2.imwrite(str(files[0]), changed)
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    frames = cached_frames(files, contract_for("ir"), cache_dir=folder, progress=False)
    assert len(cache_files(folder)) == 2
    assert (frames[0] == 7).all()
    bigger = cached_frames(files, contract_for("ir", size=16), cache_dir=folder, progress=False)
    assert len(cache_files(folder)) == 3 and bigger.shape[-2:] == (16, 16)


SLOW_BUILD = """
import sys, time
from pathlib import Path
import socket_edge.data.cache as cache
from socket_edge.contract import InputContract

def slow_read(path, modality, read=cache.read_image):
    time.sleep(0.05)
    return read(path, modality)

cache.read_image = slow_read  # a slow disk: the build is still running when it is killed
files = sorted(Path(sys.argv[1]).rglob("*.png"))
cache.cached_frames(files, InputContract.for_modality("rgb", ("bars", "blob", "ring"), 24), cache_dir=sys.argv[2],
                    progress=False)
"""


def test_a_killed_build_leaves_no_cache_that_is_used(tmp_path: Path) -> None:
    data = write_class_folders(tmp_path / "rgb", "rgb", per_class=60)
    folder = tmp_path / "cache"
    child = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(data), str(folder)])
    deadline = time.monotonic() + 60
    while not list(folder.glob(".frames-*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert list(folder.glob(".frames-*.tmp")) and not cache_files(folder)
    files = files_of(data)
    frames = cached_frames(files, contract_for("rgb"), cache_dir=folder, progress=False)
    assert not list(folder.glob(".frames-*.tmp"))  # the killed build's leftover is deleted
    assert len(cache_files(folder)) == 1
    np.testing.assert_array_equal(frames[-1], prepare_raw(read_image(files[-1], "rgb"), contract_for("rgb")))


def test_an_unwritable_cache_folder_is_one_line(tmp_path: Path) -> None:
    files = files_of(write_class_folders(tmp_path / "rgb", "rgb", per_class=1))
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(OutputError, match="--cache-dir") as caught:
        cached_frames(files, contract_for("rgb"), cache_dir=blocked / "cache", progress=False)
    assert "\n" not in str(caught.value)


def test_a_new_cache_removes_the_ones_unused_for_30_days(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "cache"
    old_files, new_files = (files_of(write_class_folders(tmp_path / name, "ir", per_class=2, seed=seed))
                            for name, seed in (("old", 0), ("new", 1)))
    cached_frames(old_files, contract_for("ir"), cache_dir=folder, progress=False)
    [stale] = cache_files(folder)
    month_ago = time.time() - 31 * 86400
    os.utime(stale, (month_ago, month_ago))
    cached_frames(old_files, contract_for("ir"), cache_dir=folder, progress=False)  # used: touched, kept
    assert cache_files(folder) == [stale] and stale.stat().st_mtime > month_ago
    os.utime(stale, (month_ago, month_ago))
    kept = np.load(stale, mmap_mode="r")  # a run still reading it
    capsys.readouterr()
    cached_frames(new_files, contract_for("ir"), cache_dir=folder, progress=False)
    assert stale not in cache_files(folder) and len(cache_files(folder)) == 1
    assert f"frame cache: removed 1 cache(s) unused for 30 days (0.00 GB) from {folder}" in capsys.readouterr().err
    assert kept.shape[0] == len(old_files) and int(kept.sum()) >= 0  # still readable where it was open



def object_header(path: Path) -> None:
    """Rewrite the header's dtype as Python objects (same length): what numpy refuses without allow_pickle."""
    data = path.read_bytes()
    descr = data[:128].split(b"'descr': ")[1].split(b",")[0]
    path.write_bytes(data.replace(descr, b"'|O'".ljust(len(descr)), 1))


@pytest.mark.parametrize("damage, problem", [
    (lambda p: os.truncate(p, 2000), "mmap length is greater than file size"),
    (object_header, "Array can't be memory-mapped: Python objects in dtype."),
    (lambda p: p.write_bytes(p.read_bytes() + b"\0" * 100), "bytes holding uint16"),
])
def test_a_damaged_cache_is_said_to_be_damaged_and_built_again(tmp_path: Path, capsys, damage, problem) -> None:
    """Issue 23, item 8: a truncated cache, one with an object-dtype header or one of the wrong
    size was "unexpected ValueError: mmap length…" on every later run; now one line and a rebuild."""
    files = files_of(write_class_folders(tmp_path / "depth", "depth", per_class=2))
    folder, contract = tmp_path / "cache", contract_for("depth")
    expected = cached_frames(files, contract, cache_dir=folder, progress=False).copy()
    [built] = cache_files(folder)
    damage(built)
    capsys.readouterr()
    frames = cached_frames(files, contract, cache_dir=folder, progress=False)
    np.testing.assert_array_equal(frames, expected)
    err = capsys.readouterr().err
    assert err.startswith(f"frame cache: {built} is damaged (") and problem in err, err
    assert err.endswith("); decoding the frames again\n") and err.count("\n") == 1
    assert cache_files(folder) == [built] and not list(folder.glob(".*.tmp"))
    cached_frames(files, contract, cache_dir=folder, progress=False)  # rebuilt whole: reused without a word
    assert capsys.readouterr().err == ""


def test_pruning_removes_only_files_named_as_caches(tmp_path: Path) -> None:
    """A --cache-dir may be a folder of the user's: an old `frames-001.npy` of theirs is not a cache."""
    folder = tmp_path / "cache"
    folder.mkdir()
    theirs = folder / "frames-001.npy"
    np.save(theirs, np.arange(3))
    month_ago = time.time() - 31 * 86400
    os.utime(theirs, (month_ago, month_ago))
    cached_frames(files_of(write_class_folders(tmp_path / "ir", "ir", per_class=1)), contract_for("ir"),
                  cache_dir=folder, progress=False)
    assert theirs.is_file() and len(cache_files(folder)) == 2
