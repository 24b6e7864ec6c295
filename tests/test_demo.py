"""`socket-edge demo` end to end at a tiny size: every artifact, the summary, and a re-run that
skips finished steps (and redoes only an unfinished one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socket_edge.demo import METHODS, DemoConfig, run_demo
from socket_edge.errors import UsageError
from socket_edge.models import artifact

TINY = DemoConfig(per_class=4, size=32, heldout_per_class=1, weights="none", source_epochs=1, adapt_epochs=1,
                  distill_epochs=1, batch_size=8)
REPORTS = ("summary.json", "summary.png")  # rewritten by every run


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    pytest.importorskip("pyrealsense2", reason="the recording step needs pyrealsense2 (the realsense extra)")
    out = tmp_path_factory.mktemp("demo") / "run"
    return out, run_demo(TINY, out, progress=False)


def test_every_artifact_and_number_is_there(demo):
    out, summary = demo
    for name in ("demo.json", "scenes/synth.json", "source-kv1-rgb.pt", "source-kv2-rgb.pt", "socket.onnx",
                 "student.pt", "student.onnx", "student-run/metrics.jsonl",
                 "run.jsonl", *REPORTS):
        assert (out / name).is_file(), name
    for method, _ in METHODS:
        assert (out / f"adapt-{method}.pt").is_file()
        assert (out / f"adapt-{method}-run" / "metrics.jsonl").is_file()
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
    assert on_disk["deployed"] == on_disk["methods"][-1]["method"] == "socket-plus"
    assert student["teacher_accuracy"] == pytest.approx(on_disk["methods"][-1]["accuracy"], abs=0.01)
    plus = json.loads((out / "adapt-socket-plus-run" / "config.json").read_text())["config"]
    assert plus["bn_distance"] == "kl" and plus["method"] == "socket-plus"  # the preset reached the demo
    assert min(student["latency_p50_ms"].values()) > 0 and min(student["onnx_bytes"].values()) > 0
    heldout = TINY.heldout_per_class * 6
    assert on_disk["runtime"]["frames"] == heldout == len(list((out / "heldout").rglob("*.png")))
    assert len((out / "run.jsonl").read_text().splitlines()) == heldout
    assert on_disk["runtime"]["fps"] > 0 and 0 <= on_disk["runtime"]["accuracy"] <= 100
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rerun_skips_finished_steps_and_redoes_an_unfinished_one(demo, capsys):
    out, _ = demo
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name not in REPORTS}
    run_demo(TINY, out, progress=False)
    steps = 5 + 2 + len(METHODS)  # synth, export, distill, recording, run; two sources; the adapt methods
    assert capsys.readouterr().out.count("skipped") == steps
    assert {p: p.stat().st_mtime_ns for p in before} == before

    (out / "steps" / "run.json").unlink()  # as if the run step had been interrupted
    run_demo(TINY, out, progress=False)
    printed = capsys.readouterr().out
    assert printed.count("skipped") == steps - 1 and "run.jsonl: 6 frames" in printed
    assert (out / "socket.onnx").stat().st_mtime_ns == before[out / "socket.onnx"]


def test_other_settings_or_a_foreign_folder_are_refused(demo, tmp_path):
    out, _ = demo
    with pytest.raises(UsageError, match="other settings.*--fresh"):
        run_demo(DemoConfig(per_class=5, size=32, weights="none"), out, progress=False)
    (tmp_path / "mine.txt").write_text("not a demo")
    with pytest.raises(UsageError, match="not a demo folder"):
        run_demo(TINY, tmp_path, fresh=True, progress=False)
    assert (tmp_path / "mine.txt").is_file()
