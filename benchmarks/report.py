"""Assemble docs/benchmarks.md from the sections the benchmark scripts write into
docs/benchmarks/*.md (each script also keeps its raw results in benchmarks/results/).

    .venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (  # (file, script that writes it)
    ("adapt.md", "benchmarks/adapt_benchmark.py"),
    ("scale.md", "benchmarks/distributed_exactness.py, adapt_memory.py, adapt_ranks.py, adapt_gpu.py"),
    ("socket_plus.md", "benchmarks/socket_plus.py"),
    ("select_auto.md", "benchmarks/select_auto.py"),
    ("distill.md", "benchmarks/distill_benchmark.py"),
    ("export.md", "benchmarks/export_latency.py"),
    ("int8.md", "benchmarks/int8_benchmark.py"),
    ("run.md", "benchmarks/run_fps.py"),
    ("multistream.md", "benchmarks/multistream.py"),
    ("demo.md", "socket-edge demo"),
)


def demote(text: str) -> str:
    """Shift every heading one level down, so each section sits under the page's title."""
    return "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())


def main() -> None:
    parts = [
        "# Benchmarks",
        "",
        "Every number on this page is written by a script in `benchmarks/` (or by `socket-edge demo`);",
        "each section names its command. Raw results: `benchmarks/results/`. Machine unless a section",
        "says otherwise: this project's CI machine, x86_64, 2 CPU cores, no GPU.",
        "",
    ]
    present = [(name, script) for name, script in SECTIONS if (ROOT / "docs" / "benchmarks" / name).exists()]
    parts += [f"- [{name[:-3]}](#{name[:-3]}) — `{script}`" for name, script in present] + [""]
    for name, _ in present:
        text = (ROOT / "docs" / "benchmarks" / name).read_text().replace("](../img/", "](img/")
        parts += [f'<a id="{name[:-3]}"></a>', "", demote(text).strip(), ""]
    out = ROOT / "docs" / "benchmarks.md"
    out.write_text("\n".join(parts) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
