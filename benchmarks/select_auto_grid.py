"""What the select-auto benchmark runs and where it keeps it: its results file, the variants and which of
them are `adapt --select auto`'s candidates. The runner (select_auto.py), its report and the benchmarks
built on it import these; this module imports neither of them."""

from __future__ import annotations

from socket_plus_grid import ROOT

from socket_edge.adapt.validators import HOLDOUT_FRACTION

# a protocol change (issue 22): the candidates on the faithful terms; the earlier protocol's runs stay in
# select_auto.jsonl (docs/benchmarks/select_auto_earlier.md)
RESULTS = ROOT / "benchmarks" / "results" / "select_auto_faithful.jsonl"
# socket-plus's preset when these runs were made (L_d as the Gaussian KL; since then λ_TI fading, config.PRESETS),
# spelled out so that a resumed grid runs what its rows hold; measuring today's candidates is a new results file
EARLIER_PLUS = {"bn_distance": "kl", "ti_schedule": "constant"}
HELD_OUT = {"ti_holdout": HOLDOUT_FRACTION}  # as `adapt --select auto` sets it: its TI validators score this share
VARIANTS: dict[str, dict] = {
    "unadapted": {"method": "none"},
    "base": HELD_OUT,  # SHOT with one source, DECISION with two
    "socket-plus": {"method": "socket-plus", **EARLIER_PLUS, **HELD_OUT},
    "socket-plus-adapter": {"method": "socket-plus", "ti_adapter": True, **EARLIER_PLUS, **HELD_OUT},
}
CANDIDATES = ("base", "socket-plus", "socket-plus-adapter")
