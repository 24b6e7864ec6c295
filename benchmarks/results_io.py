"""Reading the adaptation benchmarks' results files (socket_plus, select_auto, faithful_socket): one JSON
line per run, keyed "setting/variant/seed", and beside it the runs' class probabilities on the eval images
(gzipped JSON lines); and the two summaries their reports share. Runners and reports both import this
module, which imports neither, so a report never imports the runner that calls it."""

from __future__ import annotations

import gzip
import json
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def probs_file(results: Path) -> Path:
    """Where the per-run eval probabilities of a results file go (beside it, gzipped JSON lines)."""
    return results.with_name(results.stem + "_probs.jsonl.gz")


def records(results: Path) -> list[dict]:
    """Every record in `results`, in order ([] without the file). A line that is not JSON (a run killed
    while writing it) is skipped with a warning: its run is not done, and a resumed grid runs it again; so
    is one holding NaN or Infinity (no finished run records one: adapt refuses non-finite predictions)."""
    if not results.exists():
        return []
    found = []
    for number, line in enumerate(results.read_text().splitlines(), 1):
        if line.strip():
            try:
                found.append(json.loads(line, parse_constant=_not_finite))
            except json.JSONDecodeError:
                print(f"warning: {results}:{number} is not a JSON record (cut short?); skipped", file=sys.stderr)
            except ValueError as error:
                print(f"warning: {results}:{number} holds {error}, not a number a run records; skipped",
                      file=sys.stderr)
    return found


def _not_finite(constant: str) -> float:
    raise ValueError(constant)


def append(results: Path, record: dict) -> None:
    """Add one record as a line of its own, also after a line a killed run cut short."""
    with results.open("a+b") as f:
        cut = f.seek(0, 2) > 0 and f.seek(-1, 2) >= 0 and f.read(1) != b"\n"
        f.write((b"\n" if cut else b"") + json.dumps(record).encode() + b"\n")


def done_keys(results: Path) -> set[str]:
    """The keys of every run recorded in `results`, failed ones included (a finished run is never repeated)."""
    return {record["key"] for record in records(results)}


def rows(results: Path) -> list[dict]:
    """The recorded runs; a key recorded twice (a later grid re-ran it) keeps its last finished record."""
    return list({r["key"]: r for r in records(results) if "error" not in r}.values())


def rows_to_report(results: Path) -> list[dict]:
    """rows(results) for a report; one line and a non-zero exit where there is no finished run (a mistyped
    --results would otherwise replace the published page with an empty one)."""
    if not (found := rows(results)):
        sys.exit(f"error: no finished run in {results}; give the results file of a `run` (the page is left as it is)")
    return found


def failures(results: Path) -> list[dict]:
    """The runs recorded as failed ({"key", "error"}) and not recorded again since as finished."""
    return [r for r in {r["key"]: r for r in records(results)}.values() if "error" in r]


def probability_records(results: Path) -> dict[str, dict]:
    """key → the recorded probabilities of that run (its record in probs_file(results)); {} without the file."""
    path = probs_file(results)
    if not path.exists():
        return {}
    found = {}
    try:
        with gzip.open(path, "rt") as f:
            for line in f:
                record = json.loads(line)
                found[record["key"]] = record
    except (EOFError, gzip.BadGzipFile, json.JSONDecodeError) as error:  # a run killed while writing its member
        print(f"warning: {path} is cut short after {len(found)} records ({error}); the rest is not read",
              file=sys.stderr)
    return found


def min_im_accuracy(row: dict) -> float:
    """The accuracy of the epoch a label-free rule keeps: the lowest IM objective (epochs ≥ 1)."""
    epochs = range(1, len(row["im"])) if len(row["im"]) > 1 else range(1)
    return row["per_epoch"][min(epochs, key=lambda e: row["im"][e])]


def mean_std(values: list[float]) -> str:
    """The values as "mean ± std" to one decimal ("–" for none, the value alone for one)."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo ("?" where Linux does not tell): a record names its machine
    with it, since training's float results, and so its accuracies, differ between CPUs."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    return next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")


@contextmanager
def pages_or_one_line() -> Iterator[None]:
    """Around a report's writes: a page or plot it cannot write (a read-only or full disk) ends the report
    in one line and a non-zero exit, not a traceback; the atomic writes leave the published page as it was."""
    from socket_edge.errors import OutputError

    try:
        yield
    except OutputError as exc:
        sys.exit(f"error: {exc}")
