"""Peak memory of `socket-edge adapt` against the number of target frames (issue 14 §5).

    .venv/bin/python benchmarks/adapt_memory.py --frames 10000 [--minutes 30] [--work /tmp/socket-edge-memory]

Target: N 16-bit depth frames at 224 px, hard links to 120 synthetic scenes (`synth`, one sensor
domain) spread over the six task classes, so that the files cost no disk; every link is still
decoded into the frame cache. Sources: two MobileNetV3-small (224 px, one epoch of train-source
on the scenes' RGB images: memory, not accuracy, is measured). `adapt --method socket --epochs 1`
runs under `nice` (other jobs keep the cores) and /proc/PID/status is sampled every 0.5 s:
peak anonymous memory (RssAnon: the process's own allocations) and peak VmHWM (anonymous plus the
pages of the memory-mapped frame cache it touched, which the kernel can drop at any time). A run
longer than --minutes is stopped there; its peak so far is reported with the phase it reached.
Appends one line to benchmarks/results/adapt_memory.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "adapt_memory.jsonl"
SE = [sys.executable, "-m", "socket_edge"]


def status_kb(pid: int) -> dict[str, int]:
    """RssAnon, RssFile and VmHWM of a process, in kB (empty once it has ended)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in text.splitlines())
            if k in ("RssAnon", "RssFile", "VmHWM")}


def prepare(work: Path, frames: int) -> tuple[Path, Path, Path, Path]:
    """(target folder of `frames` linked depth frames, TI rgb, TI depth, source model folder)."""
    scenes = work / "scenes"
    if not scenes.is_dir():
        subprocess.run(SE + ["synth", str(scenes), "--per-class", "20", "--size", "224", "--domains", "kv1",
                             "-q"], check=True)
    domain = next(p for p in scenes.iterdir() if p.is_dir())
    originals = sorted((domain / "depth").rglob("*.png"))
    target = work / f"target-{frames}"
    if not target.is_dir():
        partial = work / f".target-{frames}.partial"
        for i in range(frames):
            src = originals[i % len(originals)]
            dst = partial / src.parent.name / f"{i:06d}.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                os.link(src, dst)
        partial.rename(target)
    models = work / "sources"
    for name, seed in (("a", 0), ("b", 1)):
        if not (models / f"{name}.pt").is_file():
            subprocess.run(SE + ["train-source", "--data", str(domain / "rgb"), "--arch", "mobilenet_v3_small",
                                 "--weights", "none", "--img-size", "224", "--epochs", "1", "--seed", str(seed),
                                 "--out", str(models / f"{name}.pt"), "-q"], check=True)
    return target, domain / "ti" / "rgb", domain / "ti" / "depth", models


def measure(work: Path, frames: int, minutes: float) -> dict:
    target, ti_rgb, ti_depth, models = prepare(work, frames)
    out = work / f"adapted-{frames}.pt"
    cmd = ["nice", "-n", "10", *SE, "adapt", "--source", str(models / "a.pt"), "--source", str(models / "b.pt"),
           "--target", str(target), "--modality", "depth", "--method", "socket", "--ti-source", str(ti_rgb),
           "--ti-target", str(ti_depth), "--epochs", "1", "--img-size", "224", "--out", str(out),
           "--cache-dir", str(work / "cache"), "--overwrite"]
    started = time.time()
    log = (work / f"adapt-{frames}.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    peak: dict[str, int] = {}
    while proc.poll() is None and time.time() - started < minutes * 60:
        for key, value in status_kb(proc.pid).items():
            peak[key] = max(peak.get(key, 0), value)
        time.sleep(0.5)
    finished = proc.poll() == 0
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    text = (work / f"adapt-{frames}.log").read_text(errors="replace")
    phase = "finished" if finished else "training" if "unadapted" in text else "frame cache or first scan"
    bars = [line.strip() for line in text.replace("\r", "\n").splitlines() if "|" in line]
    return {
        "frames": frames, "size": 224, "sources": "2× mobilenet_v3_small", "method": "socket",
        "peak_rss_anon_mb": round(peak.get("RssAnon", 0) / 1024), "peak_vmhwm_mb": round(peak.get("VmHWM", 0) / 1024),
        "seconds": round(time.time() - started), "phase_reached": phase, "finished": finished,
        "last_progress": bars[-1] if bars else None,
        "float32_array_mb": round(frames * 224 * 224 * 4 / 2**20),  # what the data alone took before the cache
        "uint16_cache_mb": round(frames * 224 * 224 * 2 / 2**20),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_at_start": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/socket-edge-memory"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    result = measure(args.work, args.frames, args.minutes)
    print(json.dumps(result))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
