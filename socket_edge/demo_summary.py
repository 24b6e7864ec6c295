"""The demo's one-page summary PNG: held-out depth frames with `run`'s labels, accuracy per
method and of the distilled student, ζ of the deployed ensemble, and the export, student and
runtime numbers (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socket_edge import atomic


def write_png(out: str | Path, summary: dict, samples: list[tuple[np.ndarray, str, str]], dpi: int = 100) -> Path:
    """Write the page atomically. `samples`: (depth uint16 in mm, true class, predicted class)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    fig = Figure(figsize=(11, 7), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, max(len(samples), 3), wspace=0.25, left=0.04, right=0.98, top=0.83, bottom=0.57)
    cmap = colormaps["turbo"].with_extremes(bad="black")
    top = max([float(d.max()) / 1000 for d, _, _ in samples] + [1.0])
    for i, (depth, truth, label) in enumerate(samples):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(np.ma.masked_equal(depth, 0) / 1000, cmap=cmap, vmin=0, vmax=top, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ok = label == truth
        ax.set_title(f"run: {label}\ntrue: {truth}", fontsize=9, color="darkgreen" if ok else "firebrick")
    fig.text(0.04, 0.9, f"held-out {summary['recording']} frames through `run` (depth 0–{top:.1f} m, holes black; "
                          "green: correct)", fontsize=9)
    fig.text(0.04, 0.87, f"source: {summary['source']['note']}", fontsize=8,
             color="black" if summary["source"]["kind"] == "realsense" else "firebrick")

    bottom = fig.add_gridspec(1, 3, width_ratios=(1.5, 0.7, 1.2), wspace=0.3, left=0.17, right=0.98, top=0.44,
                              bottom=0.08)
    methods = summary["methods"]
    ax = fig.add_subplot(bottom[0, 0])
    student = summary["student"]
    shallower = f" −{len(student['dropped_blocks'])} blocks" if student.get("dropped_blocks") else ""
    names = [m["name"] for m in methods] + [f"student ({student['arch']},\n{student['size']} px{shallower})",
                                            f"{summary['deployed']} .onnx in run\n(held-out frames)"]
    adapted = [m["accuracy"] for m in methods] + [student["accuracy"], None]
    held = [m["inductive"] for m in methods] + [student["inductive"], summary["runtime"]["accuracy"]]
    colours = ["#9e9e9e", "#5b8fd1", "#f0b27a", "#e07b39", "#8c6bb1", "#e0b090"]
    rows = np.arange(len(names))[::-1].astype(float)
    for offset, values, style in ((0.2, adapted, {}), (-0.2, held, {"hatch": "///", "alpha": 0.55})):
        shown = [i for i, v in enumerate(values) if v is not None]
        bars = ax.barh(rows[shown] + offset, [values[i] for i in shown], height=0.4,
                       color=[colours[i] for i in shown], edgecolor="white", **style)
        ax.bar_label(bars, labels=[f"{values[i]:.1f}%" for i in shown], fontsize=8, padding=2)
    ax.set_yticks(rows, names, fontsize=9)
    ax.set_xlim(0, 112)
    ax.axvline(100 / len(summary["classes"]), color="k", lw=0.6, ls=":")
    ax.set_xlabel("accuracy (%)")
    ax.set_title("accuracy on rs depth (dotted: chance)\nsolid: adapted frames; hatched: held-out frames", fontsize=9)

    socket = next(m for m in methods if m["method"] == summary["deployed"])
    domains = [s for s in summary["sources"]]
    ax = fig.add_subplot(bottom[0, 1])
    bars = ax.bar(range(len(domains)), socket["zeta"], color="#e07b39")
    ax.bar_label(bars, labels=[f"{z:.3f}" for z in socket["zeta"]], fontsize=9)
    ax.set_xticks(range(len(domains)), [f"{d} source" for d in domains], fontsize=8)
    ax.set_ylim(0, 1)
    ax.axhline(1 / len(domains), color="k", lw=0.6, ls=":")
    ax.set_title(f"{summary['deployed']} ζ (dotted: equal)", fontsize=10)

    ax = fig.add_subplot(bottom[0, 2])
    ax.axis("off")
    e, rt, config = summary["export"], summary["runtime"], summary["config"]
    text = "\n".join([
        f"sources  {config['arch']}, {summary['weights']['value']} init",
        "  held-out RGB " + ", ".join(f"{d} " + ("–" if s["val_accuracy"] is None else f"{s['val_accuracy']:.0f}%")
                                      for d, s in summary["sources"].items()),
        f"target   rs depth, {config['per_class']}/class, {config['size']} px",
        f"         adapt {config['adapt_epochs']} epochs",
        "",
        f"export   {e['file']}",
        f"  max |Δp| {e['max_abs_diff']:.1e} (goal ≤ {e['goal']:.0e})",
        f"  argmax agreement {e['argmax_agreement']:.1f}%",
        "",
        f"student  {student['arch']}{shallower}, {student['size']} px",
        f"  agreement with {summary['deployed']} {student['agreement']:.1f}%",
        f"  ORT p50 {student['latency_p50_ms']['student']:.2f} vs {student['latency_p50_ms']['ensemble']:.2f} ms",
        f"  ONNX {student['onnx_bytes']['student'] / 1e6:.1f} vs {student['onnx_bytes']['ensemble'] / 1e6:.1f} MB",
        "",
        f"runtime  {rt['frames']} frames, {rt['fps']:.0f} FPS",
        f"  inference p50 {rt['inference_ms']['p50']:.1f} / p95 {rt['inference_ms']['p95']:.1f} ms",
        f"  per frame p50 {rt['frame_latency_ms']['p50']:.1f} / p95 {rt['frame_latency_ms']['p95']:.1f} ms",
        f"  {rt['backend']}",
    ])
    ax.text(0, 1, text, va="top", ha="left", family="monospace", fontsize=8.5, transform=ax.transAxes)

    total = summary["step_seconds"]
    fig.suptitle(f"socket-edge demo: RGB models (kv1, kv2) → RealSense depth (rs) without depth labels   "
                 f"[{sum(total.values()) / 60:.1f} min of steps]", fontsize=12)
    return atomic.write_with(out, lambda f: fig.savefig(f, format="png"))
