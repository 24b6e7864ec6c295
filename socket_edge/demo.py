"""`socket-edge demo`: the whole path on the built-in data, offline, in one process.

    1 synth      render the synthetic RGB-D scenes (domains kv1, kv2, rs)
    2 train      an RGB source model on kv1/rgb and one on kv2/rgb
    3 adapt      both sources to rs depth: unadapted, DECISION (SHOT with learned ζ), SOCKET (Eq. 3, unsquared
                 L_TI), socket-plus
    4 export     the SOCKET ensemble to ONNX, parity checked on the rs depth images
    5 distill    one student from the SOCKET ensemble, exported too: accuracy, ONNX Runtime latency, size
    6 recording  held-out rs depth scenes written as a RealSense recording (software device), or, where
                 pyrealsense2 cannot load (not installed, or no libusb), as a lossless 16-bit FFV1 video
    7 held-out   every adapted ensemble and the student scored on the held-out frames (inductive accuracy:
                 frames no adaptation saw), beside their accuracy on the adapted frames (transductive, as in the paper)
    8 run        the recording (or video) streamed through `run`'s pipeline (ONNX Runtime)

This is the top-level job, so it imports every stage (each inside the step that needs it).
Every step leaves its artifacts in OUT and then a record OUT/steps/<step>.json (written last,
atomically) with the numbers the summary needs: a re-run skips a step whose record and
artifacts exist, and continues an interrupted adaptation or distillation from its last epoch (`--resume`).
The recording step is also redone when the source it wrote is not the one this machine can use now
(a video written before libusb was installed becomes a RealSense recording, and `run` runs again).
OUT/demo.json holds the settings; another run into the same folder must use the same ones.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from socket_edge import jsontext
from socket_edge.atomic import write_bytes
from socket_edge.errors import MissingDependencyError, UsageError, require
from socket_edge.progress import bar

SOURCE_DOMAINS = ("kv1", "kv2")
TARGET_DOMAIN = "rs"
# adapt --method, and its name in the table (two sources: DECISION is SHOT's multi-source form)
METHODS = (("none", "unadapted"), ("decision", "SHOT/DECISION"), ("socket", "SOCKET"),
           ("socket-plus", "socket-plus"))
# the ensemble exported, distilled and run: SOCKET as the paper wrote it (Eq. 3, the one named deviation in L_TI),
# the method this package implements. `adapt`'s default with TI pairs is socket-plus (SOCKET three times, averaged
# into one model of 3×2 members), first on the mean of docs/benchmarks/faithful_socket.md (config.default_method); the
# demo adapts with it too and shows both.
DEPLOYED = "socket"
DEPTH_SCALE = 0.001  # metres per unit of the held-out depth frames (synth writes millimetres)


@dataclass(frozen=True)
class DemoConfig:
    """The demo's sizes. The defaults take 15 minutes of steps on 2 CPU cores at 2.0 GHz (AMD EPYC), half of it
    socket-plus's three adaptations; `quick()` is the smoke run."""

    per_class: int = 40          # scenes per class and domain
    size: int = 64               # image side (pixels) of the scenes and the models' input
    heldout_per_class: int = 10  # extra rs scenes per class, never adapted on: the recording (20 % of rs)
    arch: str = "mobilenet_v2"
    weights: str = "auto"        # auto: ImageNet when torch's cache has it (offline), else none
    source_epochs: int = 15
    adapt_epochs: int = 10
    student_arch: str = "mobilenet_v2"  # starts from the deployed member of its architecture (distill --weights auto)
    student_scale: float = 0.875  # the student's input side as a fraction of `size`
    student_drop_blocks: int = 5  # residual blocks the student leaves out (distill --drop-blocks). On the synthetic
    # two-source benchmark (docs/benchmarks/distill.md) ⅞ without 5 blocks stayed within 1 point (+0.4 ± 2.2) at 0.23×
    # the ensemble's latency; the full ⅞ student at 0.45× (64 px inputs: per-operator overhead, not FLOPs)
    distill_epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    threads: int = 2             # ONNX Runtime intra-op threads in the run step

    @classmethod
    def quick(cls, seed: int = 0) -> "DemoConfig":
        """A smoke run: small scenes, few epochs (under 2 minutes on 2 cores)."""
        return cls(per_class=10, size=48, heldout_per_class=2, source_epochs=3, adapt_epochs=2, distill_epochs=2, seed=seed)


class Layout:
    """Where each artifact of a demo run lives."""

    def __init__(self, out: Path, command: str | None = None) -> None:
        self.out = out
        self.command = command  # the demo's command line, recorded in each artifact's provenance
        self.settings = out / "demo.json"
        self.steps = out / "steps"
        self.scenes = out / "scenes"
        self.target = self.scenes / TARGET_DOMAIN / "depth"
        self.ti_rgb = self.scenes / TARGET_DOMAIN / "ti" / "rgb"
        self.ti_depth = self.scenes / TARGET_DOMAIN / "ti" / "depth"
        self.onnx = out / "socket.onnx"
        self.student = out / "student.pt"
        self.student_onnx = out / "student.onnx"
        self.heldout = out / "heldout"
        self.run_jsonl = out / "run.jsonl"
        self.summary_json = out / "summary.json"
        self.summary_png = out / "summary.png"

    def source(self, domain: str) -> Path:
        return self.out / f"source-{domain}-rgb.pt"

    def adapted(self, method: str) -> Path:
        return self.out / f"adapt-{method}.pt"

    def recording(self, source: HeldoutSource) -> Path:
        """The held-out frames as the file `run` streams: a RealSense recording or a 16-bit video."""
        if source.kind == "video":
            return self.out / "heldout.mkv"
        from socket_edge.runtime.recording import recording_suffix

        return self.out / f"heldout{recording_suffix()}"

    def recordings(self) -> list[Path]:
        """Every name a recording step may have written (to remove the one of another source)."""
        return [self.out / f"heldout{suffix}" for suffix in (".bag", ".db3", ".mkv")]


@dataclass(frozen=True)
class HeldoutSource:
    """How the held-out frames reach `run`: kind 'realsense' (a recording) or 'video' (where
    pyrealsense2 cannot load; `fix` says how to enable it)."""

    kind: str
    problem: str = ""
    fix: str = ""

    @classmethod
    def detect(cls) -> "HeldoutSource":
        """A RealSense recording where pyrealsense2 loads, else the 16-bit FFV1 video."""
        try:
            require("pyrealsense2", "realsense")
        except MissingDependencyError as exc:
            return cls("video", str(exc), exc.fix)
        return cls("realsense")

    def note(self, name: str) -> str:
        """One line: the file `run` streamed, and how to get the RealSense recording instead."""
        if self.kind == "realsense":
            return f"{name}: a RealSense recording (pyrealsense2 software device)"
        return f"{name}: a 16-bit FFV1 video, as pyrealsense2 cannot load; for a RealSense recording: {self.fix}"


def write_json(path: Path, data: dict) -> Path:
    return write_bytes(path, [(jsontext.dumps(data, indent=2) + "\n").encode()])


class Steps:
    """Runs the steps in order: a heading, the step (or 'done before, skipped'), its record. A step is
    skipped when its record and artifacts exist and no step before it ran in this invocation (once
    one has run, the later ones run again: their inputs may have changed)."""

    def __init__(self, layout: Layout, total: int) -> None:
        self.layout, self.total, self.number = layout, total, 0
        self.ran = False  # a step has run (not skipped) in this invocation
        self.seconds: dict[str, float] = {}  # this invocation's time per step
        self.records: dict[str, dict] = {}

    def __call__(self, name: str, title: str, artifacts: list[Path], work: Callable[[], dict],
                 expect: dict | None = None) -> dict:
        """Run `work` or skip it; `expect`: values the earlier record must hold to be kept."""
        self.number += 1
        record_path = self.layout.steps / f"{name}.json"
        heading = f"[{self.number}/{self.total}] {title}"
        record = self.earlier(record_path, artifacts, expect or {})
        if record is not None:
            print(f"{heading}: done before ({record['seconds']:.0f} s then), skipped", flush=True)
            self.seconds[name] = 0.0
        else:
            print(f"\n{heading}", flush=True)
            started = time.perf_counter()
            record = work()
            self.ran = True
            record["seconds"] = round(time.perf_counter() - started, 1)
            write_json(record_path, record)
            self.seconds[name] = record["seconds"]
            print(f"    {record['note']} ({record['seconds']:.0f} s)", flush=True)
        self.records[name] = record
        return record

    def earlier(self, record_path: Path, artifacts: list[Path], expect: dict) -> dict | None:
        """The earlier record of a step that may be skipped, else None."""
        if self.ran or not record_path.is_file() or not all(p.exists() for p in artifacts):
            return None
        record = json.loads(record_path.read_text())
        return record if all(record.get(key) == value for key, value in expect.items()) else None


def prepare_out(out: Path, config: DemoConfig, fresh: bool, command: str | None = None) -> Layout:
    """Check (or with `fresh`, empty) the run folder and record the settings."""
    layout = Layout(out, command)
    settings = {"config": asdict(config)}
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not layout.settings.is_file():
            raise UsageError(f"{out} exists and is not a demo folder (no demo.json); choose another --out")
        if fresh:
            shutil.rmtree(out)
        elif json.loads(layout.settings.read_text()) != settings:
            raise UsageError(f"{out} holds a demo run with other settings (see {layout.settings}); pass --fresh to "
                             "start it again, or choose another --out")
    if not layout.settings.is_file():
        out.mkdir(parents=True, exist_ok=True)
        write_json(layout.settings, settings)
    return layout


def resolve_weights(config: DemoConfig) -> tuple[str, str]:
    """(the --weights value for train-source, what it means). 'auto' never downloads."""
    from socket_edge.models.zoo import cached_imagenet

    if config.weights != "auto":
        return config.weights, f"--weights {config.weights}"
    cached = cached_imagenet(config.arch)
    if cached:
        return "imagenet", f"ImageNet weights from torch's cache ({Path(cached[0].url).name})"
    return "none", (f"from scratch: no ImageNet file for {config.arch} in torch's cache "
                    "(`make install` puts one there)")


def step_synth(layout: Layout, config: DemoConfig, progress: bool) -> dict:
    from socket_edge.data import synth

    if not (layout.scenes / "synth.json").is_file():  # generate is atomic: a folder there is complete
        synth.generate(layout.scenes, per_class=config.per_class, size=config.size, seed=config.seed,
                       domains=(*SOURCE_DOMAINS, TARGET_DOMAIN), progress=progress)
    pairs = config.per_class * len(synth.ALL_CLASSES) * (len(SOURCE_DOMAINS) + 1)
    return {"pairs": pairs, "note": f"{pairs} scenes ({config.per_class} per class and domain, {config.size} px) "
                                    f"in {layout.scenes}"}


def step_train(layout: Layout, config: DemoConfig, domain: str, weights: tuple[str, str], progress: bool) -> dict:
    from socket_edge.models.train import TrainConfig, train_source

    train = TrainConfig(arch=config.arch, weights=weights[0], img_size=config.size, epochs=config.source_epochs,
                        batch_size=config.batch_size, seed=config.seed)
    result = train_source(layout.scenes / domain / "rgb", layout.source(domain), train, progress=progress,
                          command=layout.command)
    val = result.get("val_accuracy")  # None: too few images per class to hold any out
    held = f"held-out {domain} RGB accuracy {val:.1f}% (n={result['val_n']})" if val is not None else "none held out"
    return {"weights": weights[0], "weights_note": weights[1], "val_accuracy": val, "val_n": result["val_n"],
            "note": f"{layout.source(domain).name}: {config.arch}, {weights[1]}; {held}"}


def adapt_config(config: DemoConfig, method: str):
    """A method's adaptation settings in the demo (an AdaptConfig). Its step record holds them, and an earlier
    record with other settings (a preset that changed since) is run again."""
    from socket_edge.adapt.config import AdaptConfig

    return AdaptConfig.for_method(method, modality="depth", epochs=config.adapt_epochs, batch_size=config.batch_size,
                                  seed=config.seed)


def step_adapt(layout: Layout, config: DemoConfig, method: str, progress: bool, may_resume: bool) -> dict:
    from socket_edge.training.run_folder import RunFolder, run_folder_for
    from socket_edge.adapt.trainer import adapt

    out = layout.adapted(method)
    resume = may_resume and RunFolder(run_folder_for(out)).checkpoint.is_file()  # an interrupted run goes on
    settings = adapt_config(config, method)
    ti = {"ti_source": layout.ti_rgb, "ti_target": layout.ti_depth} if settings.uses_ti else {}
    result = adapt(settings, [layout.source(d) for d in SOURCE_DOMAINS], layout.target, out, eval_data=layout.target,
                   resume=resume, overwrite=not resume, progress=progress, command=layout.command, **ti)
    runs = result.get("repeats", [result])  # --repeats: each adaptation's own epochs
    zeta = np.reshape(result["zeta"], (len(runs), len(SOURCE_DOMAINS))).sum(axis=0).tolist()  # ζ per source
    curves = f"{run_folder_for(out).name}/" if len(runs) == 1 else f"{out.name}.repeats/*.pt-run/ ({len(runs)} runs)"
    return {"method": method, "config": settings.to_dict(), "accuracy": result["accuracy"],
            "unadapted": runs[0]["epochs"][0]["accuracy"],
            "zeta": zeta, "curves": [[e["accuracy"] for e in r["epochs"]] for r in runs],
            "note": f"{out.name}: accuracy on {TARGET_DOMAIN} depth {result['accuracy']:.1f}%, ζ "
                    f"{'/'.join(f'{z:.3f}' for z in zeta)}; curves in {curves}"}


def step_export(layout: Layout, progress: bool) -> dict:
    from socket_edge.export.exporter import export
    from socket_edge.export.summary import describe

    summary = export(layout.adapted(DEPLOYED), "onnx", out=layout.onnx, check_data=layout.target, progress=progress,
                     command=layout.command)
    lines, warnings = describe(summary)
    for line in lines[1:]:
        print(line, flush=True)
    parity = summary["parity"][0]
    return {"parity": {k: parity[k] for k in ("n", "max_abs_diff", "argmax_agreement", "goal", "ok")},
            "size_bytes": summary["size_bytes"],
            "note": f"{layout.onnx.name}: fp32 parity max |Δp| {parity['max_abs_diff']:.1e} "
                    f"(goal ≤ {parity['goal']:.0e}), argmax agreement {parity['argmax_agreement']:.1f}%"
                    + "".join(f"; warning: {w}" for w in warnings)}


def step_distill(layout: Layout, config: DemoConfig, progress: bool, may_resume: bool) -> dict:
    from socket_edge.training.run_folder import RunFolder, run_folder_for
    from socket_edge.distill.config import DistillConfig
    from socket_edge.distill.trainer import distill
    from socket_edge.export.exporter import export
    from socket_edge.models.zoo import blocks_to_drop
    from socket_edge.runtime.bench import bench

    out = layout.student
    resume = may_resume and RunFolder(run_folder_for(out)).checkpoint.is_file()  # an interrupted run goes on
    settings = DistillConfig(arch=config.student_arch, img_size=round(config.size * config.student_scale),
                             dropped_blocks=blocks_to_drop(config.student_arch, config.student_drop_blocks),
                             epochs=config.distill_epochs, batch_size=config.batch_size, seed=config.seed)
    result = distill(settings, layout.adapted(DEPLOYED), layout.target, out, ti_target=layout.ti_depth,
                     eval_data=layout.target, resume=resume, overwrite=not resume, progress=progress,
                     command=layout.command)
    export(out, "onnx", out=layout.student_onnx, check_data=layout.target, progress=progress, command=layout.command)
    latency = {name: bench(path, threads=config.threads, providers="cpu")["inference"][0]["p50_ms"]
               for name, path in (("ensemble", layout.onnx), ("student", layout.student_onnx))}
    sizes = {"ensemble": layout.onnx.stat().st_size, "student": layout.student_onnx.stat().st_size}
    ratio = latency["student"] / latency["ensemble"]
    return {"arch": config.student_arch, "size": settings.img_size, "dropped_blocks": list(settings.dropped_blocks),
            "start": result["student"]["start"],
            "accuracy": result["accuracy"], "teacher_accuracy": result["teacher_accuracy"],
            "agreement": result["agreement"], "latency_p50_ms": latency, "onnx_bytes": sizes,
            "note": f"{out.name}: {config.student_arch} at {settings.img_size} px from {result['student']['start']}: "
                    f"accuracy {result['accuracy']:.1f}% ({DEPLOYED} {result['teacher_accuracy']:.1f}%), ONNX Runtime "
                    f"p50 {latency['student']:.2f} ms against {latency['ensemble']:.2f} ms ({ratio:.2f}×); "
                    f"curves in {run_folder_for(out).name}/"}


def heldout_frames(config: DemoConfig, progress: bool = False) -> list[tuple[str, np.ndarray]]:
    """(class, depth) of rs scenes that `synth` did not render (indices from per_class on), one class
    after the other in turn, so that the first frames show every class."""
    from socket_edge.data import synth

    jobs = [(c, config.per_class + i) for i in range(config.heldout_per_class) for c in synth.TASK_CLASSES]
    return [(c, synth.render_scene(c, TARGET_DOMAIN, config.size,
                                   synth.scene_rng(config.seed, TARGET_DOMAIN, c, index))[1])
            for c, index in bar(jobs, desc="held-out scenes", enabled=progress)]


def step_recording(layout: Layout, config: DemoConfig, source: HeldoutSource, progress: bool) -> dict:
    from socket_edge.data.images import write_image
    from socket_edge.runtime.recording import write_depth_video, write_recording

    frames = heldout_frames(config, progress)
    partial = layout.out / ".heldout.partial"
    shutil.rmtree(partial, ignore_errors=True)
    files = []
    for number, (name, depth) in enumerate(frames):
        files.append(f"{name}/{number:04d}.png")
        write_image(partial / files[-1], depth, atomic=False)
    shutil.rmtree(layout.heldout, ignore_errors=True)
    partial.rename(layout.heldout)
    recording = layout.recording(source)
    tmp = recording.with_name(f".partial-{recording.name}")
    if source.kind == "video":
        write_depth_video(tmp, [depth for _, depth in frames])
    else:
        write_recording(tmp, [depth for _, depth in frames], depth_scale=DEPTH_SCALE)
    tmp.replace(recording)
    for other in layout.recordings():  # one held-out file: the one `run` streams
        if other != recording:
            other.unlink(missing_ok=True)
    kind = "16-bit FFV1 video" if source.kind == "video" else "RealSense recording, Z16"
    return {"source": source.kind, "recording": recording.name,
            "frames": [{"frame": i, "class": c, "file": f"heldout/{f}"}
                       for i, ((c, _), f) in enumerate(zip(frames, files))],
            "note": f"{recording.name}: {len(frames)} held-out {TARGET_DOMAIN} depth frames "
                    f"({config.size}×{config.size}, {kind}, depth scale {DEPTH_SCALE}) and the same frames as "
                    f"PNGs in {layout.heldout.name}/"}


def step_heldout(layout: Layout) -> dict:
    """Inductive accuracy: each adapted ensemble and the student on the held-out frames, which neither
    adaptation nor distillation saw (the number that matters once deployed)."""
    from socket_edge.evaluation import evaluate

    models = {**{m: layout.adapted(m) for m, _ in METHODS}, "student": layout.student}
    scored = {name: evaluate(path, layout.heldout, progress=False) for name, path in models.items()}
    accuracy = {name: result["accuracy"] for name, result in scored.items()}
    n = scored["student"]["n"]
    return {"accuracy": accuracy, "n": n,
            "note": f"accuracy on {n} held-out {TARGET_DOMAIN} depth frames: "
                    + ", ".join(f"{name} {accuracy[m]:.1f}%" for m, name in METHODS)
                    + f", student {accuracy['student']:.1f}%"}


def step_run(layout: Layout, config: DemoConfig, heldout: dict) -> dict:
    from socket_edge.backends import open_model
    from socket_edge.runtime.outputs import LinePrinter
    from socket_edge.runtime.pipeline import percentile_ms, run
    from socket_edge.runtime.uri import parse_source

    model = open_model(layout.onnx, threads=config.threads)
    recording = layout.out / heldout["recording"]
    uri = f"{recording}?depth_scale={DEPTH_SCALE}" if heldout["source"] == "video" else str(recording)
    tmp = layout.run_jsonl.with_name(f".{layout.run_jsonl.name}.partial")
    with tmp.open("w") as stream:
        summary = run(model, parse_source(uri), [LinePrinter(True, stream)])
    tmp.replace(layout.run_jsonl)
    print(summary.describe(), flush=True)
    records = [json.loads(line) for line in layout.run_jsonl.read_text().splitlines()]
    truth = {f["frame"]: f["class"] for f in heldout["frames"]}
    correct = sum(r["label"] == truth[r["frame"]] for r in records)
    accuracy = round(100.0 * correct / max(1, len(records)), 2)
    stages = summary.to_dict()["stages_ms"]
    latencies = [r["latency_ms"] / 1000.0 for r in records]
    result = {
        "frames": summary.frames, "heldout_frames": len(truth), "fps": round(summary.fps, 1),
        "backend": summary.backend, "inference_ms": {k: stages["inference"][k] for k in ("p50", "p95")},
        "frame_latency_ms": {"p50": percentile_ms(latencies, 50), "p95": percentile_ms(latencies, 95)},
        "accuracy": accuracy, "correct": int(correct), "stages_ms": stages,
    }
    result["note"] = (f"{layout.run_jsonl.name}: {summary.frames} frames, {summary.fps:.0f} FPS, accuracy "
                      f"{accuracy:.1f}% ({correct}/{len(records)} held-out frames)")
    return result


def samples(layout: Layout, heldout: dict, count: int = 6) -> list[tuple[np.ndarray, str, str]]:
    """(depth, true class, `run`'s label) of the first held-out frames: one per class."""
    from socket_edge.data.images import read_image

    labels = {r["frame"]: r["label"] for r in map(json.loads, layout.run_jsonl.read_text().splitlines())}
    return [(read_image(layout.out / f["file"], "depth"), f["class"], labels.get(f["frame"], "?"))
            for f in heldout["frames"][:count]]


def report(config: DemoConfig, layout: Layout, steps: Steps, source: HeldoutSource, total_s: float) -> dict:
    """summary.json: every number of the run."""
    from socket_edge.data.synth import TASK_CLASSES

    r = steps.records
    first = r[f"train-{SOURCE_DOMAINS[0]}"]
    inductive = r["heldout"]["accuracy"]
    methods = [{"method": m, "name": name, "accuracy": r[f"adapt-{m}"]["accuracy"], "inductive": inductive[m],
                "zeta": r[f"adapt-{m}"]["zeta"], "curves": r[f"adapt-{m}"]["curves"]} for m, name in METHODS]
    return {
        "config": asdict(config), "out": str(layout.out), "classes": list(TASK_CLASSES),
        "weights": {"value": first["weights"], "note": first["weights_note"]},
        "sources": {d: {"file": layout.source(d).name, "val_accuracy": r[f"train-{d}"]["val_accuracy"]}
                    for d in SOURCE_DOMAINS},
        "target": f"{TARGET_DOMAIN} depth, {config.per_class} images per class (transductive: the adaptation data)",
        "heldout": f"{TARGET_DOMAIN} depth, {r['heldout']['n']} frames never adapted on (inductive)",
        "methods": methods, "deployed": DEPLOYED,
        "export": {"file": layout.onnx.name, **r["export"]["parity"]},
        "student": {"file": layout.student.name, "inductive": inductive["student"],
                    **{k: v for k, v in r["distill"].items() if k not in ("note", "seconds")}},
        "runtime": {k: v for k, v in r["run"].items() if k not in ("note", "seconds")},
        "recording": r["recording"]["recording"],
        "source": {"kind": r["recording"]["source"], "note": source.note(r["recording"]["recording"]),
                   **({"problem": source.problem} if source.kind == "video" else {})},
        "step_seconds": {name: rec["seconds"] for name, rec in r.items()},
        "this_run_seconds": {**steps.seconds, "total": round(total_s, 1)},
    }


def table(summary: dict) -> str:
    """The printed result: accuracy and ζ per method, export parity, runtime."""
    zeta_head = "ζ (" + "/".join(SOURCE_DOMAINS) + ")"
    n_adapted = summary["config"]["per_class"] * len(summary["classes"])
    n_held = summary["runtime"]["heldout_frames"]
    lines = [f"{'':<15} {'accuracy on ' + TARGET_DOMAIN + ' depth':^33}",
             f"{'method':<15} {f'adapted ({n_adapted})':>16} {f'held-out ({n_held})':>16}   {zeta_head}"]
    for m in summary["methods"]:
        lines.append(f"{m['name']:<15} {m['accuracy']:>15.1f}% {m['inductive']:>15.1f}%   "
                     + "/".join(f"{z:.3f}" for z in m["zeta"]))
    lines.append(f"{'':<15} adapted: transductive, as in the paper; held-out: frames no adaptation saw")
    e, rt = summary["export"], summary["runtime"]
    lines += [
        f"export   {e['file']}: fp32 parity max |Δp| {e['max_abs_diff']:.1e} (goal ≤ {e['goal']:.0e}), "
        f"argmax agreement {e['argmax_agreement']:.1f}% on {e['n']} {TARGET_DOMAIN} depth images",
        *student_lines(summary),
        f"runtime  {rt['frames']} frames of {summary['recording']} on {rt['backend']}: {rt['fps']:.1f} FPS; "
        f"inference p50 {rt['inference_ms']['p50']:.2f} ms, p95 {rt['inference_ms']['p95']:.2f} ms; "
        f"per frame (queued → probabilities) p50 {rt['frame_latency_ms']['p50']:.1f} ms, "
        f"p95 {rt['frame_latency_ms']['p95']:.1f} ms",
        f"         accuracy on the held-out frames {rt['accuracy']:.1f}% ({rt['correct']}/{rt['frames']})",
        f"source   {summary['source']['note']}",
    ]
    seconds = summary["this_run_seconds"]
    spent = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items() if name != "total" and s)
    lines.append(f"time     {spent or 'every step done before'}; total {seconds['total']:.0f} s")
    return "\n".join(lines)


def student_lines(summary: dict) -> list[str]:
    """The student beside the deployed ensemble: accuracy, ONNX Runtime latency (batch 1), ONNX size."""
    s = summary["student"]
    lat, size = s["latency_p50_ms"], s["onnx_bytes"]
    ensemble_inductive = next(m["inductive"] for m in summary["methods"] if m["method"] == summary["deployed"])
    return [
        f"{'':<9}{'':<26}{DEPLOYED + ' ensemble':>21} {'student':>12}",
        f"student  {'accuracy on ' + TARGET_DOMAIN + ' depth':<26}{s['teacher_accuracy']:>20.1f}% {s['accuracy']:>11.1f}%"
        f"   ({s['file']}: {s['arch']} at {s['size']} px from {s['start']}; agreement {s['agreement']:.1f}%)",
        f"{'':<9}{'... on the held-out frames':<26}{ensemble_inductive:>20.1f}% {s['inductive']:>11.1f}%",
        f"{'':<9}{'ONNX Runtime p50 (batch 1)':<26}{lat['ensemble']:>18.2f} ms {lat['student']:>9.2f} ms"
        f"   ({lat['student'] / lat['ensemble']:.2f}×)",
        f"{'':<9}{'ONNX file':<26}{size['ensemble'] / 1e6:>18.1f} MB {size['student'] / 1e6:>9.1f} MB",
    ]


def run_demo(config: DemoConfig, out: str | Path, *, fresh: bool = False, progress: bool = True,
             command: str | None = None) -> dict:
    """Run (or finish) the demo in `out`; returns the summary (also OUT/summary.json and summary.png).
    `command`: the command line, recorded in every artifact's provenance."""
    started = time.perf_counter()
    layout = prepare_out(Path(out), config, fresh, command)
    source = HeldoutSource.detect()
    if source.kind == "video":  # say so now, not after the training
        print(f"the held-out frames will go through `run` as a 16-bit FFV1 video: {source.problem}", flush=True)
    weights = resolve_weights(config)
    steps = Steps(layout, 6 + len(SOURCE_DOMAINS) + len(METHODS))
    steps("synth", f"render the synthetic RGB-D scenes ({', '.join((*SOURCE_DOMAINS, TARGET_DOMAIN))})",
          [layout.scenes / "synth.json"], lambda: step_synth(layout, config, progress))
    for domain in SOURCE_DOMAINS:
        steps(f"train-{domain}", f"train an RGB source model on {domain}/rgb ({config.arch}, {weights[1]})",
              [layout.source(domain)], lambda d=domain: step_train(layout, config, d, weights, progress))
    for method, name in METHODS:
        epochs = "" if method == "none" else f", {config.adapt_epochs} epochs"
        steps(f"adapt-{method}", f"adapt {' + '.join(SOURCE_DOMAINS)} → {TARGET_DOMAIN} depth: {name}{epochs}",
              [layout.adapted(method)], lambda m=method: step_adapt(layout, config, m, progress, not steps.ran),
              expect={"config": jsontext.loads(jsontext.dumps(adapt_config(config, method).to_dict()))})
    steps("export", f"export the {DEPLOYED} ensemble to ONNX and check parity", [layout.onnx],
          lambda: step_export(layout, progress))
    steps("distill", f"distil the {DEPLOYED} ensemble into one {config.student_arch}, export it, time both",
          [layout.student, layout.student_onnx], lambda: step_distill(layout, config, progress, not steps.ran))
    what = "a RealSense recording" if source.kind == "realsense" else "a 16-bit FFV1 video (no pyrealsense2)"
    heldout = steps("recording", f"write held-out rs depth frames as {what}", [layout.recording(source), layout.heldout],
                    lambda: step_recording(layout, config, source, progress), expect={"source": source.kind})
    steps("heldout", "score every model on the held-out frames (inductive accuracy)",
          [layout.adapted(m) for m, _ in METHODS] + [layout.student, layout.heldout], lambda: step_heldout(layout))
    steps("run", f"stream the {'recording' if source.kind == 'realsense' else 'video'} through `run` (ONNX Runtime)",
          [layout.run_jsonl], lambda: step_run(layout, config, heldout))

    from socket_edge.demo_summary import write_png

    summary = report(config, layout, steps, source, time.perf_counter() - started)
    write_json(layout.summary_json, summary)
    write_png(layout.summary_png, summary, samples(layout, heldout))
    print("\n" + table(summary))
    print(f"\nwrote {layout.summary_json} and {layout.summary_png}")
    return summary

