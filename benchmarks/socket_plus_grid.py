"""What the socket-plus benchmark runs and where it keeps it: the paths, the rgbnir212 classes, the seeds
and the variants with their priority. The runner (socket_plus.py), its report and the benchmarks built on
the same settings import these; this module imports none of them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "socket_plus.jsonl"
CPU_RESULTS = ROOT / "benchmarks" / "results" / "socket_plus_cpu.jsonl"  # the supplement run on a 2-core CPU
RGBNIR = ROOT.parent / "shared" / "data" / "rgbnir212"
TR = "country,field,forest,indoor,mountain,oldbuilding"
TI = "street,urban,water"
SEEDS = (0, 1, 2)

# name → (where it runs: "single", "two" or "both", AdaptConfig options). "base" is SHOT on one
# source and DECISION on two; every other variant is SOCKET plus or minus one lever, then the
# combinations. keep = min-im is evaluated from each run's recorded history (it never changes training).
VARIANTS: dict[str, tuple[str, dict]] = {
    "base": ("both", {}),
    "socket (paper)": ("both", {"method": "socket"}),
    "socket −L_d": ("both", {"method": "socket", "lambda_d": 0}),
    "socket −L_TI": ("both", {"method": "socket", "lambda_ti": 0}),
    "socket, L_TI norm": ("both", {"method": "socket", "ti_distance": "norm"}),
    "socket, L_d layer mean": ("both", {"method": "socket", "bn_reduction": "mean"}),
    "socket, L_d first ¼ layers": ("both", {"method": "socket", "bn_reduction": "mean", "bn_layers": 0.25}),
    "socket, TI BN running": ("both", {"method": "socket", "ti_bn": "running"}),
    "socket, L_d as Gaussian KL": ("both", {"method": "socket", "bn_distance": "kl"}),
    "socket, TI same crop": ("both", {"method": "socket", "ti_augment": True}),
    "socket −L_d, λ_TI 0.5": ("both", {"method": "socket", "lambda_d": 0, "lambda_ti": 0.5}),
    "base + EMA teacher": ("both", {"ema": 0.9}),
    "socket + EMA teacher": ("both", {"method": "socket", "ema": 0.9}),
    "base + NC": ("both", {"lambda_nc": 1.0}),
    "socket + NC": ("both", {"method": "socket", "lambda_nc": 1.0}),
    "socket, NC instead of L_pl": ("both", {"method": "socket", "lambda_nc": 1.0, "lambda_pl": 0}),
    "socket, ζ softmax lr 1": ("two", {"method": "socket", "zeta_param": "softmax", "lr_zeta": 1.0}),
    "socket −L_d, λ_TI 1": ("both", {"method": "socket", "lambda_d": 0, "lambda_ti": 1.0}),
    "socket −L_d + EMA teacher": ("both", {"method": "socket", "lambda_d": 0, "ema": 0.9}),
    "socket −L_d, λ_TI 0.5 + EMA teacher": ("both", {"method": "socket", "lambda_d": 0, "lambda_ti": 0.5, "ema": 0.9}),
    "socket, L_d as Gaussian KL + EMA teacher": ("both", {"method": "socket", "bn_distance": "kl", "ema": 0.9}),
    "plus A": ("both", {"method": "socket", "bn_reduction": "mean", "bn_layers": 0.25, "ti_augment": True,
                        "ema": 0.9, "lambda_nc": 1.0, "zeta_param": "softmax", "lr_zeta": 1.0}),
    "plus B": ("both", {"method": "socket", "lambda_d": 0, "ti_augment": True, "ema": 0.9, "lambda_nc": 1.0,
                        "zeta_param": "softmax", "lr_zeta": 1.0}),
    "plus C": ("both", {"method": "socket", "bn_reduction": "mean", "bn_layers": 0.25, "ti_augment": True,
                        "lambda_ti": 0.5, "ema": 0.9, "zeta_param": "softmax", "lr_zeta": 1.0}),
}
PRIORITY = ["base", "socket (paper)", "plus A", "plus B", "plus C", "socket + NC", "socket + EMA teacher",
            "socket −L_d", "socket, L_d first ¼ layers", "socket, TI same crop", "base + NC", "base + EMA teacher",
            "socket, ζ softmax lr 1", "socket, NC instead of L_pl", "socket −L_TI", "socket, L_TI norm",
            "socket, L_d layer mean", "socket −L_d, λ_TI 0.5", "socket, TI BN running", "socket −L_d, λ_TI 1",
            "socket −L_d + EMA teacher", "socket −L_d, λ_TI 0.5 + EMA teacher", "socket, L_d as Gaussian KL + EMA teacher"]
