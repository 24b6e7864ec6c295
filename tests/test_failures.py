"""Nothing lost, nothing overwritten, one line per failure: outputs that are inputs or exist, two
runs of one output, cached weights that are not torchvision's, a full disk, a damaged recording,
non-finite options, crafted or damaged model files, stale temporary files, unexpected errors."""

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
import torch

from conftest import adapt_argv, needs_realsense, write_class_folders
from socket_edge import atomic
from socket_edge.claim import lock_path, locked
from socket_edge.cli import main
from socket_edge.contract import InputContract
from socket_edge.modelfile import KEY_CONTRACT
from socket_edge.training.run_folder import MARKER
from test_runtime import depth_frames, linear_onnx, save_pngs

ERROR = "socket-edge: error: "


def failure(argv: list[str], capsys, code: int = 1) -> str:
    """The one stderr line of a failing command (without the prefix)."""
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(ERROR) and "Traceback" not in err, err
    return err[len(ERROR):].rstrip("\n")


def usage_error(argv: list[str], capsys) -> str:
    """The one stderr line of a command line that argparse refuses (exit 2)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith(ERROR), err
    return err[len(ERROR):].rstrip("\n")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def limited(argv: list[str], max_bytes: int, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a process that may write files of at most `max_bytes` (RLIMIT_FSIZE): writes
    beyond it fail with EFBIG, as writes to a full disk fail with ENOSPC (tests cannot mount one)."""
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, {max_bytes})); "
            f"from socket_edge.cli import main; sys.exit(main({argv!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)


def leftovers(folder: Path) -> list[str]:
    """Temporary and lock files under `folder`."""
    return sorted(p.name for p in folder.rglob(".*") if p.name.endswith((".tmp", ".lock")) or ".tmp." in p.name)


# 1. outputs

def test_an_input_is_never_overwritten_and_an_output_only_with_overwrite(setup, tmp_path, capsys):
    source = setup["a"]
    before = digest(source)
    err = failure(adapt_argv(setup, source, method="shot", overwrite=None) + ["--overwrite"], capsys, code=2)
    assert err == (f"--out {source} is also an input of this command (--source {source}); choose another --out: "
                   "an input is never overwritten, not even with --overwrite")
    err = failure(["distill", str(source), "--target", str(setup["depth"]), "--out", str(source), "--overwrite"],
                  capsys, code=2)
    assert err.startswith(f"--out {source} is also an input of this command (the teacher {source})")
    assert digest(source) == before

    out = tmp_path / "m.pt"
    out.write_bytes(b"an earlier model")
    train = ["train-source", "--data", str(setup["rgb"]), "--arch", "mobilenet_v3_small", "--weights", "none",
             "--out", str(out), "--epochs", "1", "--img-size", "32", "-q"]
    assert failure(train, capsys, code=2) == (f"--out {out} already exists; pass --overwrite to replace it, or "
                                              "choose another --out")
    assert out.read_bytes() == b"an earlier model" and leftovers(tmp_path) == []
    assert main(train + ["--overwrite"]) == 0 and out.read_bytes() != b"an earlier model"

    onnx_file = out.with_suffix(".onnx")
    onnx_file.write_bytes(b"an earlier export")
    err = failure(["export", str(out), "-q"], capsys, code=2)
    assert err == f"--out {onnx_file} already exists; pass --overwrite to replace it, or choose another --out"

    model = linear_onnx(tmp_path / "depth.onnx", "depth")
    save_pngs(tmp_path / "frames", depth_frames(n=2))
    video = tmp_path / "seen.mp4"
    video.write_bytes(b"an earlier video")
    run = ["run", str(model), "--source", str(tmp_path / "frames"), "-q", "--save"]
    assert failure(run + [str(video)], capsys, code=2) == (f"--save {video} already exists; pass --overwrite to "
                                                           "replace it, or choose another --save")
    assert main(run + [str(video), "--overwrite"]) == 0 and video.stat().st_size > 1000
    assert failure(["run", str(model), "--source", str(video), "-q", "--save", str(video), "--overwrite"], capsys,
                   code=2) == (
        f"--save {video} is also an input of this command (--source {video}); choose another --save: an input is "
        "never overwritten, not even with --overwrite")
    stream1 = tmp_path / "seen.s1.mp4"  # several sources: one video per stream, none of them an input either
    stream1.write_bytes(b"an earlier video")
    assert failure(run + [str(video), "--source", str(stream1), "--overwrite"], capsys, code=2) == (
        f"--save {stream1} is also an input of this command (--source 1 {stream1}); choose another --save: an input "
        "is never overwritten, not even with --overwrite")


# 2. two runs of one output

def test_a_second_run_of_a_running_output_fails_at_once_and_a_killed_one_frees_it(setup, tmp_path, capsys):
    out = tmp_path / "adapted.pt"
    argv = adapt_argv(setup, out, method="shot", epochs=200)
    first = subprocess.Popen([sys.executable, "-c", f"from socket_edge.cli import main; main({argv!r})"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_folder = tmp_path / "adapted.pt-run"
        deadline = time.time() + 120
        while not (run_folder / "metrics.jsonl").is_file() and time.time() < deadline:
            time.sleep(0.2)
        started = time.time()
        err = failure(adapt_argv(setup, out, method="shot", epochs=1) + ["--overwrite"], capsys)
        assert time.time() - started < 5
        assert err == (f"{out} is being written by process {first.pid} (socket-edge {' '.join(argv)}); wait for it "
                       "to finish, or choose another output")
        assert (run_folder / "metrics.jsonl").is_file() and first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the kernel released the killed one's locks, on the output and on its run folder
    with locked(out, "the next run"), locked(run_folder, "the next run"):
        assert lock_path(out).read_text() == f"process {os.getpid()} (the next run)\n"
    assert leftovers(tmp_path) == []


# 3. torchvision weights in torch's cache

class Planted:
    """Unpickling this creates a file: the proof that a load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_replaced_imagenet_file_is_refused_and_never_unpickled(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    cached.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save({"features.0.0.weight": Planted(marker)}, cached)
    err = failure(["train-source", "--data", str(setup["rgb"]), "--arch", "mobilenet_v2", "--weights", "imagenet",
                   "--out", str(tmp_path / "m.pt"), "--epochs", "1", "--img-size", "32", "-q"], capsys)
    assert err == (f"{cached} is not torchvision's file: its SHA-256 starts with {digest(cached)[:8]}, its name says "
                   "b0353104; it is damaged or was replaced. Delete it and run again with network access to "
                   "download it, or pass --weights none")
    assert not marker.exists() and not (tmp_path / "m.pt").exists()


# 4. a full disk

def test_a_full_disk_is_one_line_and_the_pure_atomic_write_leaves_nothing(setup, tmp_path):
    with pytest.raises(OSError) as full:  # a real ENOSPC: /dev/full
        with open("/dev/full", "wb") as f:
            f.write(b"x")
    assert str(atomic.write_error(Path("/data/m.pt"), full.value)) == (
        "cannot write /data/m.pt: the disk is full (No space left on device); free space in /data or write elsewhere")

    out = tmp_path / "m.pt"
    result = limited(["train-source", "--data", str(setup["rgb"]), "--arch", "mobilenet_v3_small", "--weights",
                      "none", "--out", str(out), "--epochs", "1", "--img-size", "32", "-q"], 200_000, tmp_path)
    assert result.returncode == 1 and result.stderr == (
        f"{ERROR}cannot write {out}: the file would exceed the file-size limit of this process (ulimit -f) (File too "
        f"large); free space in {tmp_path} or write elsewhere\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_full_disk_leaves_a_run_that_resume_continues(setup, tmp_path, capsys):
    out = tmp_path / "adapted.pt"
    argv = adapt_argv(setup, out, method="shot", epochs=1)
    result = limited(argv, 1_000_000, tmp_path)  # config and metrics fit, a checkpoint does not
    run_folder = tmp_path / "adapted.pt-run"
    assert result.returncode == 1 and result.stderr == (
        f"{ERROR}cannot write {run_folder}/checkpoint.pt: the file would exceed the file-size limit of this process "
        f"(ulimit -f) (File too large); free space in {run_folder} or write elsewhere; then add --resume to the same "
        "command: the run folder keeps every finished epoch\n")
    assert sorted(p.name for p in run_folder.iterdir()) == [MARKER, "config.json", "metrics.jsonl", "steps.jsonl"]
    assert not out.exists() and leftovers(tmp_path) == []
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0
    assert f"resuming {run_folder} from the start: no epoch had been saved" in capsys.readouterr().out
    assert out.is_file() and [json.loads(line)["epoch"] for line in (run_folder / "metrics.jsonl").open()] == [0, 1]
    assert failure(argv + ["--resume"], capsys, code=2) == (
        f"nothing to resume: the run in {run_folder} has finished ({out} was written); start a new run with --overwrite")


# 5. run --save on a full disk

def test_a_video_that_cannot_be_written_is_not_left_under_its_name(tmp_path):
    model = linear_onnx(tmp_path / "depth.onnx", "depth")
    save_pngs(tmp_path / "frames", depth_frames(n=12))
    video = tmp_path / "out" / "seen.avi"
    result = limited(["run", str(model), "--source", str(tmp_path / "frames"), "--save", str(video), "-q"], 20_000,
                     tmp_path)
    line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and re.fullmatch(
        rf"{ERROR}cannot write video {video}: \d+ of 12 frames can be read back \([\d.]+ MB free in {video.parent}: "
        r"is the disk full\?\); nothing was saved under that name", line), result.stderr
    assert list(video.parent.iterdir()) == []


# 6. a damaged RealSense recording

@needs_realsense
def test_a_damaged_recording_says_what_was_lost(tmp_path, capsys):
    from socket_edge.runtime.recording import recording_suffix, write_recording

    if recording_suffix() != ".db3":
        pytest.skip("this pyrealsense2 writes rosbag1 (.bag), which holds no frame count to compare with")
    path = write_recording(tmp_path / f"scene{recording_suffix()}", depth_frames(n=12))
    with sqlite3.connect(path) as db:
        (frame6,) = db.execute("SELECT data FROM messages JOIN topics ON topics.id = messages.topic_id WHERE "
                               "topics.name LIKE '%/Depth_0/image/data%' ORDER BY timestamp LIMIT 1 OFFSET 6").fetchone()
    data = bytearray(path.read_bytes())
    start = data.find(frame6[:200]) + 100
    data[start:start + 16] = bytes(16)  # damage the compressed pixels of frame 6
    path.write_bytes(bytes(data))
    model = linear_onnx(tmp_path / "depth.onnx", "depth")
    capsys.readouterr()
    assert main(["run", str(model), "--source", str(path), "--json"]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["frame"] for line in out.splitlines()] == [0, 1, 2, 3, 4, 5]
    assert err.splitlines()[-1] == (f"{ERROR}read 6 of 12 frames of {path}; the recording is damaged after frame 5 "
                                    "(the rest cannot be decoded)")


# 7. non-finite and out-of-range options

@pytest.mark.parametrize("flag, value, message", [
    ("--lambda-ti", "nan", "must be a finite number, got 'nan'"),
    ("--lambda-d", "inf", "must be a finite number, got 'inf'"),
    ("--lambda-pl", "-0.1", "a loss weight must be at least 0 (0 turns the term off), got '-0.1'"),
    ("--ema", "1", "must be in [0, 1), got '1'"),
    ("--bn-layers", "nan", "must be a finite number, got 'nan'"),
])
def test_adapt_refuses_non_finite_and_out_of_range_numbers(setup, tmp_path, capsys, flag, value, message):
    err = usage_error(adapt_argv(setup, tmp_path / "a.pt") + [flag, value], capsys)
    assert err == f"argument {flag}: {message}; see socket-edge adapt --help"


def test_train_source_and_distill_refuse_bad_fractions_and_temperatures(tmp_path, capsys):
    train = ["train-source", "--data", "d", "--out", "m.pt", "--val-fraction"]
    assert usage_error(train + ["1.5"], capsys) == ("argument --val-fraction: must be in [0, 1), got '1.5'; see "
                                                   "socket-edge train-source --help")
    assert usage_error(train + ["nan"], capsys).startswith("argument --val-fraction: must be a finite number")
    distill = ["distill", "t.pt", "--target", "d", "--out", "s.pt"]
    assert usage_error(distill + ["--temperature", "inf"], capsys).startswith(
        "argument --temperature: must be a finite number, got 'inf'")
    assert usage_error(distill + ["--lambda-pl", "nan"], capsys).startswith("argument --lambda-pl: must be a finite")


# 8. messages that misled

def test_exported_truncated_and_pickled_files_are_named_for_what_they_are(trained_rgb, tmp_path, capsys):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x08\x07")
    assert failure(["export", str(engine), "-q"], capsys, code=1) == (
        f"{engine} is an exported TensorRT engine, not a model artifact (.pt); export, adapt and distill take the .pt "
        f"it was exported from (socket-edge inspect {engine} names it)")
    graph = tmp_path / "model.onnx"  # export builds an engine from a graph, and says so
    graph.write_bytes(b"\x08\x07")
    assert failure(["export", str(graph), "-q"], capsys, code=2) == (
        f"{graph} is already an ONNX graph; `export {graph} --format engine` builds a TensorRT engine from it, and "
        "`export MODEL.pt` makes a new graph")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(trained_rgb.read_bytes()[:20_000])
    assert failure(["inspect", str(truncated)], capsys) == (
        f"{truncated} is damaged or truncated (its zip archive is incomplete or corrupt); copy it again or re-create it")
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "socket-edge-model", "note": Planted(tmp_path / "code-ran")}, pickled)
    assert failure(["inspect", str(pickled)], capsys) == (
        f"{pickled} holds Python objects (io.open), not only plain data and tensors, so it is not a "
        "socket-edge artifact: socket-edge never unpickles code. Re-create it with socket-edge train-source, adapt "
        "or distill")
    assert not (tmp_path / "code-ran").exists()


def test_eval_of_infrared_files_with_a_depth_model_says_so(tmp_path, capsys):
    model = linear_onnx(tmp_path / "depth.onnx", "depth")
    data = write_class_folders(tmp_path / "ir", "ir", per_class=1)
    assert failure(["eval", str(model), "--data", str(data), "-q"], capsys) == (
        f"{model} expects depth images (16-bit) but {data}/bars/000.png is an 8-bit single-channel image, as "
        "infrared is; evaluate on depth data, or pass --modality ir to measure this model unadapted on infrared")


# 9. crafted or damaged files

def test_crafted_artifacts_and_graphs_are_one_line(trained_rgb, tmp_path, capsys):
    data = torch.load(trained_rgb, weights_only=True)
    crafted = tmp_path / "crafted.pt"
    torch.save({**data, "format_version": "2"}, crafted)
    assert failure(["inspect", str(crafted)], capsys) == (
        f"{crafted} has format_version '2' (str), not a whole number: it was not written by socket-edge or was "
        "edited; re-create it")
    data["members"][0]["config"]["colour"] = True
    torch.save(data, crafted)
    assert failure(["export", str(crafted), "-q"], capsys) == (
        f"{crafted} member 0 has an unknown config key 'colour' (known: arch, bottleneck, dropped_blocks, head, "
        "num_classes); it was written by a newer socket-edge or edited: upgrade socket-edge or re-create it")

    graph = linear_onnx(tmp_path / "depth.onnx", "depth")
    proto = onnx.load(graph)
    two = InputContract.for_modality("depth", ("bars", "blob"), 32).to_json()
    next(p for p in proto.metadata_props if p.key == KEY_CONTRACT).value = two
    onnx.save(proto, graph)
    save_pngs(tmp_path / "frames", depth_frames(n=1))
    assert failure(["run", str(graph), "--source", str(tmp_path / "frames")], capsys) == (
        f"{graph} outputs 3 class probabilities but its contract names 2 classes (bars, blob); the file was edited "
        "or damaged: export it again")


# 10. stale temporary files

def test_a_killed_write_leaves_a_temporary_file_that_the_next_write_removes(setup, tmp_path):
    out = tmp_path / "m.pt"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom socket_edge import atomic\n"
        f"with atomic.replacing({str(out)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half a model')\n    print('writing', flush=True)\n    time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    writer.kill()
    writer.wait()
    stale = tmp_path / f".m.pt.{writer.pid}.tmp"
    running = tmp_path / ".m.pt.1.tmp"  # a live process's (init's) file is never touched
    running.write_bytes(b"in progress")
    assert stale.is_file()
    assert main(["train-source", "--data", str(setup["rgb"]), "--arch", "mobilenet_v3_small", "--weights", "none",
                 "--out", str(out), "--epochs", "1", "--img-size", "32", "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name, "m.pt"]


# the catch-all

def test_an_unexpected_error_is_one_line_unless_debug(trained_rgb, monkeypatch, capsys):
    def broken(path):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr("socket_edge.backends.summarize", broken)  # a bug, as no real input provokes one
    assert failure(["inspect", str(trained_rgb)], capsys) == (
        "unexpected TypeError: unsupported operand type(s) for +: 'int' and 'str'; run with --debug for the traceback")
    with pytest.raises(TypeError, match="unsupported operand"):
        main(["--debug", "inspect", str(trained_rgb)])
