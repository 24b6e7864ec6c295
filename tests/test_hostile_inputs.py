"""Issue 23, items 10-24: several streams, recordings and numbers as a hostile or unlucky user meets
them. Real ONNX Runtime sessions, real 16-bit PNG/TIFF frames and videos, real files crafted as an
attacker would; a full disk is a file-size limit (RLIMIT_FSIZE), as in test_failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from socket_edge.cli import main
from socket_edge.runtime.outputs import VideoSaver
from test_runtime import depth_frames, linear_onnx, save_pngs

ERROR = "socket-edge: error: "
ROOT = Path(__file__).resolve().parents[1]


def cli(argv: list[str], cwd: Path, max_bytes: int | None = None, stdin=None) -> subprocess.CompletedProcess:
    """The CLI in its own process (FFmpeg writes to the process's stderr, not to Python's), with
    files of at most `max_bytes` (a full disk: writes beyond it fail with EFBIG)."""
    limit = (f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, {max_bytes})); "
             if max_bytes else "")
    code = f"import sys; {limit}from socket_edge.cli import main; sys.exit(main({[str(a) for a in argv]!r}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300, env=env)


def one_line(err: str) -> str:
    """The one stderr line of a failure, without the prefix."""
    assert err.count("\n") == 1 and err.startswith(ERROR) and "Traceback" not in err, err
    return err[len(ERROR):].rstrip("\n")


@pytest.fixture(scope="module")
def depth_graph(tmp_path_factory) -> Path:
    return linear_onnx(tmp_path_factory.mktemp("hostile") / "depth.onnx", "depth")


@pytest.fixture(scope="module")
def ir_graph(tmp_path_factory) -> Path:
    return linear_onnx(tmp_path_factory.mktemp("hostile-ir") / "ir.onnx", "ir")


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    """Twelve 16-bit depth PNGs."""
    folder = tmp_path_factory.mktemp("frames") / "frames"
    save_pngs(folder, depth_frames(n=12))
    return folder


# 10. one stream's preprocessing error stops that stream alone, and the summary is printed

def test_a_float_tiff_frame_fails_its_own_stream_and_the_summary_is_printed(depth_graph, frames, tmp_path, capsys):
    tiff = tmp_path / "tiff"
    tiff.mkdir()
    for i, frame in enumerate(depth_frames(n=6)):
        cv2.imwrite(str(tiff / f"{i:04d}.tif"), frame if i < 2 else frame.astype(np.float32))
    assert main(["run", str(depth_graph), "--source", str(frames), "--source", str(tiff), "--json"]) == 1
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in lines if r["stream"] == 0] == list(range(12))
    assert [r["frame"] for r in lines if r["stream"] == 1] == [0, 1]
    assert "14 frames in" in err and "from 2 streams" in err  # the summary
    assert f"  stream 1  2 frames" in err and "failed: " in err
    assert err.splitlines()[-1] == (f"{ERROR}stream 1 ({tiff}) failed: {tiff} frame 2 holds floating-point depth; "
                                    "pass --depth-scale (metres per value, 1 for metres)")


# 11 and 17. --save on a full disk: the first failed write is one line, every writer is closed

def test_save_on_a_full_disk_stops_at_the_first_failed_write_with_one_line(depth_graph, frames, tmp_path):
    out = tmp_path / "out"
    result = cli(["run", depth_graph, "--source", f"{frames}?loop=1", "--max-frames", "3000", "--save",
                  out / "seen.mp4", "-q"], tmp_path, max_bytes=20_000)
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert line.startswith(f"cannot write video {out / 'seen.mp4'} (frame ") and line.endswith(
        "the file would exceed the file-size limit of this process (ulimit -f); nothing was saved under that name: "
        f"free space in {out} or --save elsewhere"), line
    assert int(line.split("(frame ")[1].split(")")[0]) < 3000  # it stopped at the failed write
    assert list(out.iterdir()) == []


def test_save_of_several_streams_on_a_full_disk_prints_the_summary_and_leaves_no_file(depth_graph, frames, tmp_path):
    out = tmp_path / "out"
    result = cli(["run", depth_graph, "--source", f"{frames}?loop=1", "--source", f"{frames}?loop=1",
                  "--max-frames", "3000", "--save", out / "seen.avi", "-q"], tmp_path, max_bytes=20_000)
    err = result.stderr.splitlines()
    assert result.returncode == 1 and "from 2 streams" in err[0], result.stderr
    assert [line for line in err if not line.startswith("  ")][1:] == [err[-1]]  # the summary, then one line
    assert err[-1].startswith(f"{ERROR}cannot write video {out}/seen.s") and "WARN" not in result.stderr
    assert list(out.iterdir()) == []  # both temporary videos removed


class Failing:
    """An output whose close() raises, as a writer on a full disk does."""

    def close(self) -> None:
        raise OSError(28, "No space left on device")


def test_closing_outputs_closes_every_writer_when_one_raises(tmp_path):
    from socket_edge.runtime.outputs import close_all

    saver = VideoSaver(tmp_path / "v.avi", "depth")
    saver.write({"label": "bars", "score": 0.5}, depth_frames(n=1)[0])
    assert saver.tmp.exists()
    with pytest.raises(OSError, match="No space"):
        close_all([Failing(), saver])
    assert saver.writer is None and list(tmp_path.iterdir()) == [tmp_path / "v.avi"]


# 21. FFmpeg never prints before our line

def test_an_rtsp_source_that_does_not_answer_is_our_line_alone(ir_graph, tmp_path):
    result = cli(["run", ir_graph, "--source", "rtsp://127.0.0.1:9/x", "-q"], tmp_path)
    assert result.returncode == 1
    assert one_line(result.stderr) == ("cannot open RTSP stream rtsp://127.0.0.1:9/x (it did not answer); check the "
                                       "address, the network and the camera's credentials, or try ?transport=tcp")


# 13. numbers from a URI or an option are finite and in range where they are parsed

@pytest.mark.parametrize("argv, line", [
    (["--source", "{frames}?depth_scale=inf"],
     "source '{frames}?depth_scale=inf': depth_scale (metres per unit, e.g. 0.001) must be a finite number, got inf"),
    (["--source", "{frames}?depth_scale=1e400"],
     "source '{frames}?depth_scale=1e400': depth_scale (metres per unit, e.g. 0.001) must be a finite number, got inf"),
    (["--source", "{frames}?depth_scale=1e300"],
     "source '{frames}?depth_scale=1e300': depth_scale (metres per unit, e.g. 0.001) must be at most 100, got 1e+300"),
    (["--source", "0?width=99999999999999"], "source '0?width=99999999999999': width must be at most 16384, got "
                                             "'99999999999999'"),
])
def test_non_finite_and_huge_numbers_in_a_source_uri_are_one_line(depth_graph, frames, capsys, argv, line):
    argv = [a.format(frames=frames) for a in argv]
    assert main(["run", str(depth_graph), *argv, "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and one_line(err) == line.format(frames=frames)


def test_a_huge_depth_scale_option_is_refused(depth_graph, frames, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(depth_graph), "--source", str(frames), "--depth-scale", "1e300", "--json"])
    assert exit_info.value.code == 2
    assert one_line(capsys.readouterr().err) == (
        "argument --depth-scale: must be metres per unit between 1e-09 and 100 (0.001 for millimetres, 1 for metres), "
        "got '1e300'; see socket-edge run --help")


def test_json_is_written_strictly():
    from socket_edge import jsontext
    from socket_edge.errors import SocketEdgeError

    assert jsontext.dumps({"score": 0.5}) == '{"score": 0.5}'
    with pytest.raises(SocketEdgeError, match="not finite"):
        jsontext.dumps({"score": float("nan")})
    with pytest.raises(ValueError, match="NaN is not a JSON number"):
        jsontext.loads('{"zeta": [NaN]}')
    package = ROOT / "socket_edge"
    writers = [p for p in package.rglob("*.py") if "json.dumps(" in p.read_text() and p.name != "jsontext.py"]
    assert writers in ([], [package / "data" / "cache.py"])  # the cache key holds names and sizes, never a float


def crafted(trained: Path, out: Path, change) -> Path:
    """A copy of the artifact `trained` with `change(data)` applied, as an attacker or an editor would."""
    import torch

    data = torch.load(trained, weights_only=True)
    change(data)
    torch.save(data, out)
    return out


# 14. a contract with std = 0 is refused by the contract itself: eval, run and export alike

def test_a_contract_with_zero_std_is_refused_by_eval_and_run(trained_rgb, tmp_path, capsys):
    from conftest import write_class_folders

    model = crafted(trained_rgb, tmp_path / "std0.pt", lambda d: d["contract"].update(std=[0.0, 0.0, 0.0]))
    data = write_class_folders(tmp_path / "rgb", "rgb", per_class=1)
    expected = (f"{model} is damaged: invalid input contract: std must be at least 1e-06, got 0.0; it was edited or "
                "not written by socket-edge: re-create it")
    for argv in (["eval", str(model), "--data", str(data), "-q"],
                 ["run", str(model), "--source", str(data / "bars"), "--json"]):
        capsys.readouterr()
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and one_line(err) == expected


# 20. crafted artifacts: one line naming the damaged file and what is wrong

CRAFTED = [
    ("names-as-ints", lambda d: d["contract"].update(class_names=[1, 2, 3]),
     "is damaged: invalid input contract: class_names must be a list of non-empty strings, got (1, 2, 3)"),
    ("size-as-strings", lambda d: d["contract"].update(size=["32", "32"]),
     "is damaged: invalid input contract: size must be a whole number, got '32' (str)"),
    ("negative-bottleneck", lambda d: d["members"][0]["config"].update(bottleneck=-5),
     "member 0 has a config this socket-edge cannot build: bottleneck must be at least 1, got -5"),
    ("huge-bottleneck", lambda d: d["members"][0]["config"].update(bottleneck=10**12),
     "member 0 has a config this socket-edge cannot build: bottleneck must be at most 16384, got 1000000000000"),
    ("list-contract", lambda d: d.update(contract=[1, 2]),
     "is damaged: input contract must be a mapping, got list"),
    ("dict-members", lambda d: d.update(members={"a": 1}),
     "is damaged: its members are dict {'a': 1}, not a list of models"),
    ("list-provenance", lambda d: d.update(provenance=[1]), "is damaged: its provenance is list, not a mapping"),
    ("string-zeta", lambda d: d.update(zeta="ab"), "is damaged: ζ is 'ab', not a list of 1 weights (one per member)"),
    ("nan-zeta", lambda d: d.update(zeta=[float("nan")]), "is damaged: a ζ weight must be a finite number, got nan"),
    ("infinite-unit", lambda d: d["contract"].update(unit=float("inf")),
     "is damaged: invalid input contract: unit must be a finite number, got inf"),
    ("classes-as-string", lambda d: d["members"][0]["config"].update(num_classes="3"),
     "member 0 has a config this socket-edge cannot build: num_classes must be a whole number, got '3' (str)"),
    ("other-weights", lambda d: d["members"][0].update(state_dict={"x": __import__("torch").zeros(1)}),
     "is damaged: member 0's weights do not fit its mobilenet_v3_small config (Missing key(s) in state_dict:"),
]


@pytest.mark.parametrize("name, change, words", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_artifact_fields_are_one_line_naming_the_file(trained_rgb, tmp_path, capsys, name, change, words):
    model = crafted(trained_rgb, tmp_path / f"{name}.pt", change)
    command = ["run", str(model), "--source", str(tmp_path)] if name == "other-weights" else ["inspect", str(model)]
    capsys.readouterr()
    assert main(command) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"{model} {words}") or line.startswith(f"{model}: {words}"), line
    assert "unexpected" not in line


def test_a_graph_whose_contract_is_of_another_size_is_one_line(tmp_path, frames, capsys):
    import onnx

    from socket_edge.contract import InputContract
    from socket_edge.modelfile import KEY_CONTRACT

    graph = linear_onnx(tmp_path / "depth.onnx", "depth")
    proto = onnx.load(graph)
    wrong = InputContract.for_modality("depth", ("bars", "blob", "ring"), 48).to_json()
    next(p for p in proto.metadata_props if p.key == KEY_CONTRACT).value = wrong
    onnx.save(proto, graph)
    assert main(["run", str(graph), "--source", str(frames), "--json"]) == 1
    assert one_line(capsys.readouterr().err) == (
        f"{graph} takes input N×1×32×32 but its contract describes N×1×48×48 frames; the file was edited or damaged: "
        "export it again")


def test_a_symlink_loop_as_target_is_one_line(trained_rgb, tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    capsys.readouterr()
    code = main(["adapt", "--source", str(trained_rgb), "--target", str(loop), "--modality", "depth", "--method",
                 "shot", "--out", str(tmp_path / "a.pt"), "-q"])
    line = one_line(capsys.readouterr().err)
    assert code in (1, 2) and str(loop) in line and "unexpected" not in line, line
    assert not (tmp_path / "a.pt").exists()


# 15. bench with several sources: a failed stream is an error and no speedup is claimed

def test_bench_with_a_failed_stream_exits_1_and_reports_no_speedup(depth_graph, frames, tmp_path, capsys):
    missing = tmp_path / "missing.mkv"
    argv = ["bench", str(depth_graph), "--source", str(frames), "--source", str(missing), "--frames", "4",
            "--threads", "1", "--providers", "cpu"]
    capsys.readouterr()
    assert main(argv + ["--json"]) == 1
    out, err = capsys.readouterr()
    streams = json.loads(out)["streams"]
    assert streams["speedup"] is None
    assert streams["problems"] == [f"stream 1 ({missing}) failed: video file {missing} does not exist"]
    assert err.splitlines()[-1] == f"{ERROR}stream 1 ({missing}) failed: video file {missing} does not exist"
    assert main(argv) == 1
    assert "2 streams, speedup of batching n/a (a stream failed)" in capsys.readouterr().out


# 16. bench of an engine without TensorRT: the line run and eval give

def test_bench_of_an_engine_without_tensorrt_is_runs_line_in_text_and_json(tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x08\x07")
    capsys.readouterr()
    assert main(["run", str(engine), "--source", str(tmp_path)]) == 1
    expected = one_line(capsys.readouterr().err)
    assert "tensorrt is not installed" in expected
    for json_flag in ([], ["--json"]):
        assert main(["bench", str(engine), *json_flag]) == 1
        out, err = capsys.readouterr()
        assert out == "" and one_line(err) == expected


# 22. --save with a suffix no video writer takes says so

def test_save_with_a_suffix_that_is_no_video_names_the_suffix(depth_graph, frames, tmp_path, capsys):
    (tmp_path / "c4").mkdir()
    for name, what in (("out.txt", ".txt"), ("out", "a name without a suffix")):
        save = tmp_path / "c4" / name
        assert main(["run", str(depth_graph), "--source", str(frames), "--save", str(save), "-q"]) == 2
        assert one_line(capsys.readouterr().err) == (
            f"--save {save}: {what} is not a video format socket-edge writes; name the file out.mp4 or out.avi "
            "(or .m4v, .mov)")
    assert list((tmp_path / "c4").iterdir()) == []


# 24. control sequences in class names never reach the terminal

HOSTILE = ("\x1b]0;title\x07\x1b[2J", "b\x1b[1A\rframe 99 fake 1.000", "c")


def test_control_sequences_in_class_names_are_escaped_by_run_and_inspect(tmp_path, frames, capsys):
    import onnx

    from socket_edge.contract import InputContract
    from socket_edge.modelfile import KEY_CONTRACT

    graph = linear_onnx(tmp_path / "depth.onnx", "depth")
    proto = onnx.load(graph)
    hostile = InputContract.for_modality("depth", HOSTILE, 32).to_json()
    next(p for p in proto.metadata_props if p.key == KEY_CONTRACT).value = hostile
    onnx.save(proto, graph)
    capsys.readouterr()
    assert main(["run", str(graph), "--source", str(frames)]) == 0
    out, err = capsys.readouterr()
    assert main(["inspect", str(graph)]) == 0
    shown = capsys.readouterr().out
    for text in (out, err, shown):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert len(out.splitlines()) == 12 and all(line.startswith("frame ") for line in out.splitlines())
    assert r"classes       3: \x1b]0;title\x07\x1b[2J, b\x1b[1A\rframe 99 fake 1.000, c" in shown
    assert main(["inspect", str(graph), "--json"]) == 0  # JSON escapes them itself
    assert json.loads(capsys.readouterr().out)["contract"]["class_names"] == list(HOSTILE)


def test_an_error_line_escapes_what_it_quotes(capsys):
    from socket_edge.cli import _report
    from socket_edge.errors import DataError

    assert _report(DataError("the model's classes are \x1b[2J\nsocket-edge: fine")) == 1
    assert capsys.readouterr().err == "socket-edge: error: the model's classes are \\x1b[2J\\nsocket-edge: fine\n"


# a closed pipe ends the command quietly

def test_a_closed_pipe_ends_run_quietly(depth_graph, frames, tmp_path):
    code = (f"import sys; from socket_edge.cli import main; "
            f"sys.exit(main(['run', {str(depth_graph)!r}, '--source', {str(frames) + '?loop=1'!r}, '--json']))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    err = process.stderr.read().decode()
    assert json.loads(first)["frame"] == 0
    assert process.wait(timeout=60) == 141 and err == ""


# 19. a pickle payload is refused with our line, never torch's advice to unpickle it

class Payload:
    """Unpickling this would create the file `target`."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_a_pickle_payload_as_weights_or_checkpoint_is_one_line_and_never_runs(tmp_path, capsys):
    import torch

    from conftest import write_class_folders
    from socket_edge.errors import ArtifactError
    from socket_edge.training.run_folder import RunFolder

    ran = tmp_path / "code-ran"
    weights = tmp_path / "weights.pth"
    torch.save({"conv.weight": Payload(ran)}, weights)
    data = write_class_folders(tmp_path / "rgb", "rgb", per_class=2)
    capsys.readouterr()
    assert main(["train-source", "--data", str(data), "--weights", str(weights), "--arch", "mobilenet_v3_small",
                 "--out", str(tmp_path / "m.pt"), "--img-size", "32", "-q"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line == (f"{weights} holds Python objects (io.open), not only plain data and tensors, so it is not a "
                    "state dict socket-edge loads: socket-edge never unpickles code. Pass a state dict saved with "
                    "torch.save(model.state_dict(), FILE), or --weights imagenet")
    run = RunFolder(tmp_path / "m-run")
    run.root.mkdir()
    torch.save({"epoch": 1, "settings": Payload(ran)}, run.checkpoint)  # planted
    with pytest.raises(ArtifactError) as error:
        run.restore_checkpoint({"lr": 0.01}, None, None, None)
    assert str(error.value) == (f"{run.checkpoint} holds Python objects (io.open), not only plain data and "
                                "tensors, so it is not a checkpoint socket-edge wrote: socket-edge never unpickles "
                                "code. Delete it to start the run again, or start a new run with --overwrite")
    torch.save({"epoch": 1}, run.checkpoint)  # plain data, not a run's
    with pytest.raises(ArtifactError, match="is damaged"):
        run.restore_checkpoint({"lr": 0.01}, None, None, None)
    assert not ran.exists() and not (tmp_path / "m.pt").exists()


# 18 and 23. a batch that cannot train is refused before anything is written, once per torchrun job

def test_batch_size_1_is_refused_before_any_write(setup, tmp_path, capsys):
    from conftest import adapt_argv

    out = tmp_path / "a.pt"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(adapt_argv(setup, out, method="shot", epochs=1, batch_size="1"))
    assert exit_info.value.code == 2
    assert one_line(capsys.readouterr().err) == ("argument --batch-size: must be at least 2 (BatchNorm layers train on "
                                                 "two or more frames), got 1; see socket-edge adapt --help")
    assert list(tmp_path.iterdir()) == []  # no run folder, no lock, no output


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_batch_that_does_not_split_over_the_ranks_is_said_once_by_rank_0(setup, tmp_path, capsys, monkeypatch,
                                                                           rank):
    from conftest import adapt_argv

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(adapt_argv(setup, tmp_path / "a.pt", method="shot", epochs=1, batch_size="9"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    if rank == "1":
        assert err == ""
    else:
        assert one_line(err) == ("argument --batch-size: 9 does not split over the 2 processes of this torchrun job; "
                                 "pass a multiple of 2 (it is the global batch: each process takes an equal share); "
                                 "see socket-edge adapt --help")
    assert list(tmp_path.iterdir()) == []
