"""`socket-edge demo` end to end at a tiny size: every artifact, the summary, and a re-run that
skips finished steps (and redoes only an unfinished one). It runs with and without RealSense:
where pyrealsense2 cannot load, the held-out frames go through `run` as a 16-bit FFV1 video."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import LOADER_ERROR, REALSENSE_PROBLEM, unloadable_realsense
from socket_edge.demo import METHODS, DemoConfig, run_demo
from socket_edge.errors import UsageError
from socket_edge.models import artifact

TINY = DemoConfig(per_class=4, size=32, heldout_per_class=1, weights="none", source_epochs=1, adapt_epochs=1,
                  distill_epochs=1, batch_size=8)
REPORTS = ("summary.json", "summary.png")  # rewritten by every run
STEPS = 6 + 2 + len(METHODS)  # synth, export, distill, recording, heldout, run; two sources; the adapt methods
SOURCE = "realsense" if REALSENSE_PROBLEM is None else "video"  # what this machine streams


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "run"
    return out, run_demo(TINY, out, progress=False)


def test_every_artifact_and_number_is_there(demo):
    out, summary = demo
    for name in ("demo.json", "scenes/synth.json", "source-kv1-rgb.pt", "source-kv2-rgb.pt", "socket.onnx",
                 "student.pt", "student.onnx", "student.pt-run/metrics.jsonl",
                 "run.jsonl", *REPORTS):
        assert (out / name).is_file(), name
    for method, _ in METHODS:
        assert (out / f"adapt-{method}.pt").is_file()
        runs = [f"adapt-{method}.pt-run"] if method != "socket-plus" else \
            [f"adapt-socket-plus.pt.repeats/seed-{seed}.pt-run" for seed in (TINY.seed, TINY.seed + 1, TINY.seed + 2)]
        assert all((out / run / "metrics.jsonl").is_file() for run in runs), method
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert [m["method"] for m in on_disk["methods"]] == [m for m, _ in METHODS]
    assert all(0 <= m["accuracy"] <= 100 for m in on_disk["methods"])
    assert on_disk["methods"][0]["zeta"] == [0.5, 0.5]  # unadapted: equal ζ
    assert on_disk["export"]["max_abs_diff"] <= 1e-4 and on_disk["export"]["ok"]
    student = on_disk["student"]
    assert student["size"] == 28 and student["accuracy"] >= 0 and student["start"].startswith("teacher member")
    assert student["dropped_blocks"] == [3, 6, 10, 13, 16]  # DemoConfig.student_drop_blocks = 5
    assert artifact.load(out / "student.pt")[0].members[0].config.dropped_blocks == (3, 6, 10, 13, 16)
    assert on_disk["deployed"] == "socket"
    deployed = next(m for m in on_disk["methods"] if m["method"] == "socket")
    assert student["teacher_accuracy"] == pytest.approx(deployed["accuracy"], abs=0.01)
    plus = artifact.read(out / "adapt-socket-plus.pt")
    assert plus["provenance"]["config"]["repeats"] == 3 and len(plus["members"]) == 6  # the preset reached the demo
    shown = next(m for m in on_disk["methods"] if m["method"] == "socket-plus")
    assert len(shown["zeta"]) == 2 and sum(shown["zeta"]) == pytest.approx(1.0) and len(shown["curves"]) == 3
    assert min(student["latency_p50_ms"].values()) > 0 and min(student["onnx_bytes"].values()) > 0
    heldout = TINY.heldout_per_class * 6
    assert on_disk["runtime"]["frames"] == heldout == len(list((out / "heldout").rglob("*.png")))
    assert len((out / "run.jsonl").read_text().splitlines()) == heldout
    assert on_disk["runtime"]["fps"] > 0 and 0 <= on_disk["runtime"]["accuracy"] <= 100
    # inductive accuracy: the deployed .pt scored on the held-out PNGs agrees with its .onnx streamed by `run`
    assert all(0 <= m["inductive"] <= 100 for m in on_disk["methods"]) and 0 <= student["inductive"] <= 100
    assert deployed["inductive"] == pytest.approx(on_disk["runtime"]["accuracy"], abs=0.01)
    assert on_disk["heldout"] == f"rs depth, {heldout} frames never adapted on (inductive)"
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    source = on_disk["source"]
    assert source["kind"] == SOURCE and (out / on_disk["recording"]).is_file()
    assert [p.name for p in out.glob("heldout.*")] == [on_disk["recording"]]
    if SOURCE == "video":  # which source, and how to get the RealSense recording
        assert on_disk["recording"] == "heldout.mkv" and source["problem"] == REALSENSE_PROBLEM
        assert source["note"].startswith("heldout.mkv: a 16-bit FFV1 video, as pyrealsense2 cannot load; "
                                         "for a RealSense recording: ")


def test_a_rerun_skips_finished_steps_and_redoes_an_unfinished_one(demo, capsys):
    out, _ = demo
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name not in REPORTS}
    run_demo(TINY, out, progress=False)
    steps = STEPS
    printed = capsys.readouterr().out
    assert printed.count("skipped") == steps
    assert printed.count("\nsource   heldout.") == 1  # the table names the source
    assert "adapted (24)" in printed and "held-out (6)" in printed  # transductive and inductive columns
    assert {p: p.stat().st_mtime_ns for p in before} == before

    (out / "steps" / "run.json").unlink()  # as if the run step had been interrupted
    run_demo(TINY, out, progress=False)
    printed = capsys.readouterr().out
    assert printed.count("skipped") == steps - 1 and "run.jsonl: 6 frames" in printed
    assert (out / "socket.onnx").stat().st_mtime_ns == before[out / "socket.onnx"]

    record = out / "steps" / "adapt-socket-plus.json"  # as written before socket-plus's preset changed
    record.write_text(json.dumps({**json.loads(record.read_text()), "config": {"method": "socket-plus", "repeats": 1}}))
    run_demo(TINY, out, progress=False)
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 6  # synth, the two sources, none, decision, socket: then socket-plus again
    assert "repeat seed-0: finished earlier, reused" in printed  # its runs, of the same settings, are reused
    assert json.loads(record.read_text())["config"]["repeats"] == 3


def test_other_settings_or_a_foreign_folder_are_refused(demo, tmp_path):
    out, _ = demo
    with pytest.raises(UsageError, match="other settings.*--fresh"):
        run_demo(DemoConfig(per_class=5, size=32, weights="none"), out, progress=False)
    (tmp_path / "mine.txt").write_text("not a demo")
    with pytest.raises(UsageError, match="not a demo folder"):
        run_demo(TINY, tmp_path, fresh=True, progress=False)
    assert (tmp_path / "mine.txt").is_file()


def test_without_realsense_the_same_frames_go_through_run_as_a_video(demo, tmp_path, monkeypatch, capsys):
    """pyrealsense2 that cannot load (libusb missing): the recording step writes a 16-bit FFV1 video
    and `run` streams it with the same labels; once pyrealsense2 loads again, a re-run redoes those
    three steps (recording, held-out scores, run) with a RealSense recording."""
    out = tmp_path / "run"
    shutil.copytree(demo[0], out)
    labels = (out / "run.jsonl").read_text().splitlines()
    unloadable_realsense(monkeypatch, tmp_path)
    capsys.readouterr()
    summary = run_demo(TINY, out, progress=False)
    printed = capsys.readouterr().out
    assert printed.count("skipped") == STEPS - (3 if SOURCE == "realsense" else 0)  # recording, heldout, run
    assert f"as a 16-bit FFV1 video: pyrealsense2 is installed but cannot load the system library libusb-1.0.so.0 " \
           f"({LOADER_ERROR}); sudo apt-get install libusb-1.0-0" in printed
    assert "\nsource   heldout.mkv: a 16-bit FFV1 video, as pyrealsense2 cannot load; for a RealSense recording: " \
           "sudo apt-get install libusb-1.0-0 (or run `make install` / tools/system_deps.sh as root)" in printed
    assert summary["source"]["kind"] == "video" and summary["recording"] == "heldout.mkv"
    assert [p.name for p in out.glob("heldout.*")] == ["heldout.mkv"]
    assert summary["runtime"]["frames"] == TINY.heldout_per_class * 6
    # lossless: the video gives `run` the very frames of the recording, hence the same labels
    assert [json.loads(line)["label"] for line in (out / "run.jsonl").read_text().splitlines()] == \
           [json.loads(line)["label"] for line in labels]

    monkeypatch.undo()  # pyrealsense2 loads again (where it is installed with its libusb)
    summary = run_demo(TINY, out, progress=False)
    assert capsys.readouterr().out.count("skipped") == STEPS - (3 if SOURCE == "realsense" else 0)
    assert summary["source"]["kind"] == SOURCE and [p.name for p in out.glob("heldout.*")] == [summary["recording"]]
