"""The benchmarks' results files survive a run killed while writing its line: the cut line is skipped
with a warning (its run counts as not done, so a resumed grid runs it again) and the next record still
lands on a line of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from results_io import append, done_keys, failures, rows, rows_to_report  # noqa: E402


def test_a_line_cut_short_is_skipped_and_the_next_record_lands_on_its_own_line(tmp_path, capsys):
    results = tmp_path / "grid.jsonl"
    append(results, {"key": "s/a/0", "accuracy": 50.0})
    append(results, {"key": "s/b/0", "error": "RuntimeError: nan"})
    with results.open("a") as f:
        f.write('{"key": "s/c/0", "accur')  # killed mid-write
    assert done_keys(results) == {"s/a/0", "s/b/0"}
    assert "grid.jsonl:3 is not a JSON record (cut short?); skipped" in capsys.readouterr().err
    append(results, {"key": "s/c/0", "accuracy": 70.0})
    append(results, {"key": "s/b/0", "accuracy": 60.0})  # a failed run recorded again as finished
    assert results.read_text().splitlines()[3] == '{"key": "s/c/0", "accuracy": 70.0}'
    assert {r["key"]: r["accuracy"] for r in rows(results)} == {"s/a/0": 50.0, "s/c/0": 70.0, "s/b/0": 60.0}
    assert failures(results) == []


def test_no_file_is_no_record(tmp_path):
    missing = tmp_path / "none.jsonl"
    assert done_keys(missing) == set() and rows(missing) == [] and failures(missing) == []


def test_probabilities_cut_short_keep_the_records_before_the_cut(tmp_path, capsys):
    import gzip

    from results_io import probability_records, probs_file

    path = probs_file(tmp_path / "grid.jsonl")
    sizes = []
    for key in ("s/a/0", "s/b/0"):
        with gzip.open(path, "at") as f:
            f.write(f'{{"key": "{key}", "probs": [[0.5, 0.5]]}}\n')
        sizes.append(path.stat().st_size)
    path.write_bytes(path.read_bytes()[:sizes[0] + 12])  # the second member cut inside its header
    assert list(probability_records(tmp_path / "grid.jsonl")) == ["s/a/0"]
    assert "is cut short after 1 records" in capsys.readouterr().err


def test_a_report_of_no_finished_run_refuses_and_writes_nothing(tmp_path):
    """A mistyped --results (missing, empty, or only failed runs) ends in one line, not an empty page."""
    import subprocess

    failed = tmp_path / "failed.jsonl"
    append(failed, {"key": "s/a/0", "error": "RuntimeError: nan"})
    for results in (tmp_path / "missing.jsonl", failed):
        with pytest.raises(SystemExit) as refused:
            rows_to_report(results)
        assert str(refused.value) == (f"error: no finished run in {results}; give the results file of a `run` "
                                      "(the page is left as it is)")
    append(failed, {"key": "s/a/1", "accuracy": 50.0})
    assert [r["key"] for r in rows_to_report(failed)] == ["s/a/1"]
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "faithful_socket.py"
    page = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "faithful_socket.md"
    before = page.read_bytes() if page.exists() else None
    done = subprocess.run([sys.executable, str(script), "report", "--results", str(tmp_path / "missing.jsonl")],
                          capture_output=True, text=True)
    assert done.returncode != 0 and done.stderr.strip().splitlines() == [
        f"error: no finished run in {tmp_path / 'missing.jsonl'}; give the results file of a `run` "
        "(the page is left as it is)"]
    assert (page.read_bytes() if page.exists() else None) == before


def test_a_record_with_nan_or_infinity_is_skipped_with_a_warning(tmp_path, capsys):
    results = tmp_path / "grid.jsonl"
    results.write_text('{"key": "s/a/0", "accuracy": NaN}\n{"key": "s/b/0", "inductive": -Infinity}\n'
                       '{"key": "s/c/0", "accuracy": 61.0}\n')
    assert [r["key"] for r in rows(results)] == ["s/c/0"]
    err = capsys.readouterr().err
    assert "grid.jsonl:1 holds NaN, not a number a run records; skipped" in err
    assert "grid.jsonl:2 holds -Infinity, not a number a run records; skipped" in err


def test_the_cpu_model_is_read_from_cpuinfo_or_marked_unknown():
    from results_io import cpu_model

    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu\n") == "AMD EPYC"
    assert cpu_model("processor\t: 0\n") == "?"


def test_a_page_the_report_cannot_write_ends_in_one_line():
    from results_io import pages_or_one_line
    from socket_edge.errors import OutputError

    with pytest.raises(SystemExit) as stop:
        with pages_or_one_line():
            raise OutputError("cannot write docs/x.md: Read-only file system")
    assert stop.value.code == "error: cannot write docs/x.md: Read-only file system"


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's (prctl)")
def test_a_killed_grid_runner_takes_its_workers_with_it():
    """A grid runner killed mid-queue (kill, or the machine's OOM killer) leaves no worker training on."""
    import os
    import signal
    import subprocess
    import time

    runner = subprocess.Popen([sys.executable, "-c", f"""
import os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "benchmarks")!r})
from socket_plus import worker_pool
pool = worker_pool(1)
print(pool.submit(os.getpid).result(), flush=True)
pool.submit(time.sleep, 300)
time.sleep(300)
"""], stdout=subprocess.PIPE, text=True)
    worker = int(runner.stdout.readline())
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":  # ended, waiting for its new parent to collect it
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the worker outlived its killed runner by 20 s")
