"""Reading the adaptation benchmarks' results files (socket_plus, select_auto, faithful_socket): one JSON
line per run, keyed "setting/variant/seed", and beside it the runs' class probabilities on the eval images
(gzipped JSON lines); and the two summaries their reports share. Runners and reports both import this
module, which imports neither, so a report never imports the runner that calls it."""

from __future__ import annotations

import gzip
import json
import statistics
from pathlib import Path


def probs_file(results: Path) -> Path:
    """Where the per-run eval probabilities of a results file go (beside it, gzipped JSON lines)."""
    return results.with_name(results.stem + "_probs.jsonl.gz")


def done_keys(results: Path) -> set[str]:
    """The keys of every run recorded in `results`, failed ones included (a finished run is never repeated)."""
    if not results.exists():
        return set()
    return {json.loads(line)["key"] for line in results.read_text().splitlines() if line.strip()}


def _records(results: Path) -> dict[str, dict]:
    """key → the last record of that key in `results` ({} without the file)."""
    if not results.exists():
        return {}
    return {(record := json.loads(line))["key"]: record for line in results.read_text().splitlines() if line.strip()}


def rows(results: Path) -> list[dict]:
    """The recorded runs; a key recorded twice (a later grid re-ran it) keeps its last finished record."""
    if not results.exists():
        return []
    latest = {}
    for line in results.read_text().splitlines():
        if line.strip() and "error" not in (record := json.loads(line)):
            latest[record["key"]] = record
    return list(latest.values())


def failures(results: Path) -> list[dict]:
    """The runs recorded as failed ({"key", "error"}) and not recorded again since as finished."""
    return [r for r in _records(results).values() if "error" in r]


def probability_records(results: Path) -> dict[str, dict]:
    """key → the recorded probabilities of that run (its record in probs_file(results)); {} without the file."""
    path = probs_file(results)
    if not path.exists():
        return {}
    with gzip.open(path, "rt") as f:
        return {r["key"]: r for r in map(json.loads, f)}


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
