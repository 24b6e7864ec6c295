"""What the select-auto benchmark runs and where it keeps it: its results file, the variants and which of
them are `adapt --select auto`'s candidates. The runner (select_auto.py), its report and the benchmarks
built on it import these; this module imports neither of them."""

from __future__ import annotations

from socket_plus_grid import ROOT

from socket_edge.adapt.validators import HOLDOUT_FRACTION

# the candidates on issue 22's faithful terms with socket-plus's preset since then, λ_TI fading (a new results
# file: the runs with socket-plus's earlier preset, L_d as the Gaussian KL, stay in select_auto_faithful.jsonl,
# docs/benchmarks/select_auto_kl.md; the earlier protocol's in select_auto.jsonl, select_auto_earlier.md)
RESULTS = ROOT / "benchmarks" / "results" / "select_auto_cosine.jsonl"
# socket-plus's preset for these runs (config.PRESETS), spelled out so that a resumed grid runs what its rows hold
# even after the preset moves on; measuring another preset is a new results file
# (one adaptation each: socket-plus's preset has since become SOCKET three times, and the product's candidates are
# now named base, socket and socket-adapter)
PLUS = {"ti_schedule": "cosine", "bn_distance": "norm", "d_schedule": "constant", "repeats": 1}
HELD_OUT = {"ti_holdout": HOLDOUT_FRACTION}  # as `adapt --select auto` sets it: its TI validators score this share
VARIANTS: dict[str, dict] = {
    "unadapted": {"method": "none"},
    "base": HELD_OUT,  # SHOT with one source, DECISION with two
    "socket-plus": {"method": "socket-plus", **PLUS, **HELD_OUT},
    "socket-plus-adapter": {"method": "socket-plus", "ti_adapter": True, **PLUS, **HELD_OUT},
}
CANDIDATES = ("base", "socket-plus", "socket-plus-adapter")
