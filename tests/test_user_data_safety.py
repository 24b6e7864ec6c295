"""Nothing of the user's is deleted or overwritten (issue 23, "Data loss"): run folders are named
after the whole output and carry a marker, so a folder of the user's is never emptied; no output
is, lies inside or holds an input; a result is reused or resumed only with the same input
contents; a full disk while the frame cache is built is one line; a damaged cache is rebuilt; a
command missing a dependency stops before its first step."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import adapt_argv, write_class_folders
from socket_edge.claim import locked
from socket_edge.cli import main
from socket_edge.training.run_folder import MARKER, run_folder_for
from test_failures import ERROR, failure, leftovers, limited

REPO = Path(__file__).resolve().parents[1]


def digests(root: Path) -> dict[str, str]:
    """Every file under `root` (or `root` itself) → its SHA-256: the user's data, to compare after."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def unadapted(setup: dict, out: Path, **options) -> list[str]:
    """The quickest adapt: the unadapted ensemble (no epoch), with a run folder."""
    return adapt_argv(setup, out, method="none", epochs=1, **options)


# item 1: a folder named like a run folder is deleted only when socket-edge made it

def test_a_folder_of_the_users_where_a_run_folder_goes_is_never_deleted(setup, tmp_path, capsys):
    notes = tmp_path / "notes.pt-run"
    (notes / "plans").mkdir(parents=True)
    (notes / "plans" / "todo.txt").write_text("mine")
    before = digests(notes)
    out = tmp_path / "notes.pt"
    expected = (f"{notes} exists and was not made by socket-edge (it has no {MARKER} marker), and this command "
                "writes a folder there; it is never deleted or written into: move it away, or choose another --out")
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert failure(unadapted(setup, out) + extra, capsys, code=2) == expected
        assert failure(["distill", str(setup["a"]), "--target", str(setup["depth"]), "--out", str(out), "-q",
                        "--epochs", "1", *extra], capsys, code=2) == expected
    assert digests(notes) == before and not out.exists()

    # the case: the target images in a folder named like the output's run folder
    target = tmp_path / "rf" / "foo.pt-run"
    shutil.copytree(setup["depth"], target)
    before = digests(target)
    out = tmp_path / "rf" / "foo.pt"
    err = failure(unadapted(setup, out, target=str(target), eval_data=None) + ["--overwrite"], capsys, code=2)
    assert err == (f"{target}, the folder --out {out} writes, is also an input of this command (--target {target}); "
                   "choose another --out: an input is never overwritten, not even with --overwrite")
    assert "pass --overwrite" not in err and digests(target) == before

    # a run folder socket-edge made is replaced with --overwrite, as before
    mine = tmp_path / "mine.pt"
    assert main(unadapted(setup, mine)) == 0 and (run_folder_for(mine) / MARKER).is_file()
    assert "pass --overwrite to replace it" in failure(unadapted(setup, mine), capsys, code=2)
    assert main(unadapted(setup, mine) + ["--overwrite"]) == 0
    assert leftovers(tmp_path) == []


# item 2: eval --plot

def test_eval_plot_never_writes_over_an_input_or_an_existing_file(trained_rgb, rgb_data, tmp_path, capsys):
    image = sorted(rgb_data.rglob("*.png"))[0]
    data, model = digests(rgb_data), digests(trained_rgb)
    evaluate = ["eval", str(trained_rgb), "--data", str(rgb_data), "-q", "--plot"]
    assert failure(evaluate + [str(image), "--overwrite"], capsys, code=2) == (
        f"--plot {image} lies inside an input of this command (--data {rgb_data}); choose another --plot: an input "
        "is never overwritten, not even with --overwrite")
    assert failure(evaluate + [str(trained_rgb), "--overwrite"], capsys, code=2) == (
        f"--plot {trained_rgb} is also an input of this command (the model {trained_rgb}); choose another --plot: "
        "an input is never overwritten, not even with --overwrite")
    plot = tmp_path / "confusion.png"
    plot.write_bytes(b"an earlier plot")
    assert failure(evaluate + [str(plot)], capsys, code=2) == (
        f"--plot {plot} already exists; pass --overwrite to replace it, or choose another --plot")
    assert plot.read_bytes() == b"an earlier plot"
    assert digests(rgb_data) == data and digests(trained_rgb) == model
    assert main(evaluate + [str(plot), "--overwrite"]) == 0 and plot.read_bytes()[:4] == b"\x89PNG"


# item 3: an output inside an input folder, also through a symlink

def test_an_output_inside_an_input_folder_is_refused(setup, rgb_data, tmp_path, capsys):
    d_in = tmp_path / "d_in"
    shutil.copytree(setup["depth"], d_in)
    before = digests(d_in)
    frame = sorted(d_in.rglob("*.png"))[0]
    err = failure(unadapted(setup, frame, target=str(d_in)) + ["--overwrite"], capsys, code=2)
    assert err == (f"--out {frame} lies inside an input of this command (--target {d_in}); choose another --out: "
                   "an input is never overwritten, not even with --overwrite")
    link = tmp_path / "link"
    link.symlink_to(rgb_data)
    out = link / "model.pt"
    err = failure(["train-source", "--data", str(rgb_data), "--arch", "mobilenet_v3_small", "--weights", "none",
                   "--out", str(out), "--epochs", "1", "--img-size", "32", "-q"], capsys, code=2)
    assert err.startswith(f"--out {out} lies inside an input of this command (--data {rgb_data})")
    assert digests(d_in) == before and not (rgb_data / "model.pt").exists() and leftovers(tmp_path) == []


def test_a_live_source_is_no_folder_and_a_glob_is_the_files_it_matches(tmp_path, monkeypatch):
    """`run --save` beside a camera (whose target is '' or a number, not the working folder) is
    allowed; a glob's input is the files it matches, not their folder."""
    from socket_edge.claim import refuse_inputs
    from socket_edge.cli import _source_path
    from socket_edge.errors import UsageError
    from socket_edge.runtime.uri import parse_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.png").write_bytes(b"")
    for uri in ("realsense://", "0", "rtsp://camera/stream", "*.png"):
        refuse_inputs(Path("out.mp4"), {"--source": _source_path(parse_source(uri))}, "--save")
    with pytest.raises(UsageError, match="is also an input of this command"):
        refuse_inputs(Path("f.png"), {"--source": _source_path(parse_source("*.png"))}, "--save")


# item 4: a.pt and a.pth, and the lock on the run folder

def test_outputs_differing_in_suffix_get_their_own_run_folders_and_a_running_one_is_locked(setup, tmp_path, capsys):
    first, second = tmp_path / "a.pt", tmp_path / "a.pth"
    assert main(unadapted(setup, first)) == 0
    kept = digests(run_folder_for(first))
    assert main(unadapted(setup, second)) == 0
    assert run_folder_for(first) != run_folder_for(second) and digests(run_folder_for(first)) == kept
    assert (run_folder_for(second) / "metrics.jsonl").is_file()

    # another process holds the run folder (a run into it is going on): --overwrite does not wipe it
    with locked(run_folder_for(first), "socket-edge adapt (a running one)"):
        err = failure(unadapted(setup, first) + ["--overwrite"], capsys)
    assert err == (f"{run_folder_for(first)} is being written by process {os.getpid()} (socket-edge "
                   "adapt (a running one)); wait for it to finish, or choose another output")
    assert digests(run_folder_for(first)) == kept


# item 5: a full disk while the frame cache is built

FULL_DISK = """mount -t tmpfs -o size=1m tmpfs "$1" || exit 97
shift
"$@"
echo "exit $?"
ls -A "$CACHE"
"""


def test_a_full_disk_while_the_frame_cache_is_built_is_one_line_and_leaves_nothing(rgb_data, tmp_path):
    """A real full disk: a 1 MB tmpfs (in a private mount namespace) as the cache folder, for a
    3.6 MB cache. Before: SIGBUS (exit 135) and the temporary file left in the cache folder."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small tmpfs")
    cache = tmp_path / "cache"
    cache.mkdir()
    argv = ["train-source", "--data", str(rgb_data), "--arch", "mobilenet_v3_small", "--weights", "none",
            "--out", str(tmp_path / "m.pt"), "--epochs", "1", "--img-size", "224", "--cache-dir", str(cache), "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CACHE": str(cache)}
    result = subprocess.run(["unshare", "-rm", "sh", "-c", FULL_DISK, "sh", str(cache), sys.executable, "-m",
                             "socket_edge", *argv], capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0 or "exit 97" in result.stdout:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {result.stderr.strip()}")
    key = next(iter(result.stderr.split("frames-")[1:]), "").split(".npy")[0]
    assert result.stderr == (
        f"{ERROR}frame cache: cannot write {cache}/frames-{key}.npy: the disk is full (No space left on device); "
        f"free space in {cache} or write elsewhere, or pass another --cache-dir\n")
    assert result.stdout == "exit 1\n"  # and `ls -A` of the full cache folder printed nothing: no temporary file
    assert not (tmp_path / "m.pt").exists()


# item 6: inputs identified by content

def test_resume_notices_that_the_target_images_changed(setup, tmp_path, capsys):
    target = tmp_path / "target"
    shutil.copytree(setup["depth"], target)
    out = tmp_path / "adapted.pt"
    argv = unadapted(setup, out, target=str(target), eval_data=None)
    assert main(argv) == 0
    out.unlink()  # as if it had been stopped before writing its output: a run to resume
    assert main(argv + ["--resume"]) == 0  # the same inputs: resumed
    out.unlink()
    frame = sorted(target.rglob("*.png"))[0]
    frame.write_bytes(sorted(target.rglob("*.png"))[-1].read_bytes())  # another image under the same name
    capsys.readouterr()
    assert failure(argv + ["--resume"], capsys, code=2) == (
        f"--target changed since the run in {run_folder_for(out)} started (other files or contents at the same "
        "path); resume only with the inputs it started with, or start a new run with --overwrite")
    assert not out.exists()


def test_select_auto_runs_a_candidate_again_when_a_source_was_retrained_at_the_same_path(setup, tmp_path, capsys):
    source = tmp_path / "source.pt"
    shutil.copyfile(setup["a"], source)
    out = tmp_path / "chosen.pt"
    argv = adapt_argv(setup, out, "socket", select="auto", epochs=1, sources=(str(source),))
    at = argv.index("--method")
    argv = argv[:at] + argv[at + 2:]
    assert main(argv) == 0
    capsys.readouterr()
    shutil.copyfile(setup["b"], source)  # retrained: another model at the same path
    assert main(argv + ["--overwrite"]) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "chosen.pt.candidates"
    for name in ("base", "socket", "socket-adapter"):
        assert (f"candidate {name}: --source 1 changed since it ran (other files or contents); running it again "
                f"into {folder / name}.pt") in printed
    assert "reused" not in printed
    recorded = json.loads((folder / "base.pt-run" / "config.json").read_text())["inputs"]["identity"]
    assert recorded["--source"] == ["sha256:" + hashlib.sha256(setup["b"].read_bytes()).hexdigest()]


# item 8: a damaged frame cache is in test_frame_cache.py; item 7 (collect layouts) in test_collect.py

# item 9: a dependency missing

class NoMatplotlib:
    """A finder that answers every import of matplotlib as a machine without it would."""

    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def test_a_training_command_without_matplotlib_stops_before_its_first_step(setup, tmp_path, monkeypatch, capsys):
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)  # put back after the test
    monkeypatch.setattr(sys, "meta_path", [NoMatplotlib(), *sys.meta_path])
    out = tmp_path / "adapted.pt"
    for argv in (adapt_argv(setup, out, method="shot", epochs=1),
                 ["distill", str(setup["a"]), "--target", str(setup["depth"]), "--out", str(out), "--epochs", "1",
                  "-q"]):
        command = argv[0]
        assert main(argv) == 1
        assert capsys.readouterr().err == (
            f"{ERROR}socket-edge {command} needs matplotlib, which is not installed here; install it with: pip "
            "install 'socket-edge[train]'\n")
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no epoch trained
