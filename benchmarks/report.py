"""Assemble docs/benchmarks.md from the sections the benchmark scripts write into
docs/benchmarks/*.md (each script also keeps its raw results in benchmarks/results/).

    .venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

from pathlib import Path

from socket_edge import atomic

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (  # (file, script that writes it)
    ("faithful_socket.md", "benchmarks/faithful_socket.py"),
    ("adapt.md", "benchmarks/adapt_benchmark.py"),
    ("scale.md", "benchmarks/distributed_exactness.py, adapt_memory.py, adapt_ranks.py, adapt_gpu.py"),
    ("socket_plus.md", "benchmarks/socket_plus.py"),
    ("select_auto.md", "benchmarks/select_auto.py"),
    ("select_auto_kl.md", "benchmarks/select_auto.py at c878dac"),
    ("select_auto_earlier.md", "benchmarks/select_auto.py at 9c55a28"),
    ("distill.md", "benchmarks/distill_benchmark.py"),
    ("export.md", "benchmarks/export_latency.py"),
    ("int8.md", "benchmarks/int8_benchmark.py"),
    ("run.md", "benchmarks/run_fps.py"),
    ("multistream.md", "benchmarks/multistream.py"),
    ("demo.md", "socket-edge demo"),
)


# sections whose SOCKET rows are the form that was the default before issue 22, not the paper's equations
EARLIER_PROTOCOL = ("adapt.md", "socket_plus.md", "select_auto_earlier.md")
EARLIER_NOTE = ("> **Earlier protocol (before issue 22).** The rows named *socket* or *socket (paper)* here are the "
                "form that was the default then, not the paper's equations: L_d squared and over every BatchNorm "
                "(the bottleneck's too), L_TI as the per-dimension mean of squares, λ_TI = λ_d = 0.1, encoder "
                "dropout on, a fifth of the TI pairs held out; socket-plus and the --select auto candidates were "
                "built on it. SOCKET as the paper wrote it: [faithful_socket](faithful_socket.md).")


def mark_earlier(section: Path) -> None:
    """Put EARLIER_NOTE under the section file's title, once (the scripts that write it know nothing of it)."""
    text = section.read_text()
    if EARLIER_NOTE not in text:
        title, _, rest = text.partition("\n")
        atomic.write_text(section, f"{title}\n\n{EARLIER_NOTE}\n{rest}")


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
        section = ROOT / "docs" / "benchmarks" / name
        if name in EARLIER_PROTOCOL:
            mark_earlier(section)
        text = section.read_text().replace("](../img/", "](img/")
        for other, _ in present:  # a link to another section's file is a link within this page
            text = text.replace(f"]({other})", f"](#{other[:-3]})")
        parts += [f'<a id="{name[:-3]}"></a>', "", demote(text).strip(), ""]
    out = ROOT / "docs" / "benchmarks.md"
    atomic.write_text(out, "\n".join(parts) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
