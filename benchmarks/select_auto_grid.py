"""What the select-auto benchmark runs and where it keeps it: its results file, the variants and which of
them are `adapt --select auto`'s candidates. The runner (select_auto.py), its report and the benchmarks
built on it import these; this module imports neither of them."""

from __future__ import annotations

from socket_plus_grid import ROOT

RESULTS = ROOT / "benchmarks" / "results" / "select_auto.jsonl"
VARIANTS: dict[str, dict] = {
    "unadapted": {"method": "none"},
    "base": {},  # SHOT with one source, DECISION with two
    "socket-plus": {"method": "socket-plus"},
    "socket-plus-adapter": {"method": "socket-plus", "ti_adapter": True},
}
CANDIDATES = ("base", "socket-plus", "socket-plus-adapter")
