"""The `socket-edge` command. Each subcommand imports its stage only when it runs, so
`socket-edge --help` and the runtime commands work without torch; a training command on an
install without the `train` extra stops with one line naming it."""

from __future__ import annotations

import argparse
import errno
import math
import os
import shlex
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

from socket_edge import __version__, jsontext
from socket_edge.adapt.choices import METHODS, VALIDATORS
from socket_edge.contract import DEFAULT_DEPTH_SCALE, MODALITIES, UNIT_RANGE
from socket_edge.errors import OutputError, SocketEdgeError, UsageError, require
from socket_edge.terminal import printable, printable_data


class Parser(argparse.ArgumentParser):
    """argparse with one line per usage error (no usage block), exit code 2."""

    def error(self, message: str):
        if _rank() != 0:  # every process of a torchrun job parses the same command line: rank 0 says it once
            self.exit(2)
        self.exit(2, f"socket-edge: error: {printable(message)}; see {self.prog} --help\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


MAX_REPEATS = 16


def _repeats(text: str) -> int:
    """adapt --repeats: 1 to MAX_REPEATS adaptations (each costs a whole adaptation and 1× the inference)."""
    value = _positive_int(text)
    if value > MAX_REPEATS:
        raise argparse.ArgumentTypeError(f"at most {MAX_REPEATS} (each repeat is a whole adaptation and adds its "
                                         f"members to the model), got {value}")
    return value


def _batch_size(text: str) -> int:
    """A training batch: at least 2 (BatchNorm needs two frames to train), and under torchrun a
    multiple of the processes (each takes an equal share); refused here, before anything is written."""
    value = _positive_int(text)
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (BatchNorm layers train on two or more frames), got "
                                         f"{value}")
    if value % ranks:
        raise argparse.ArgumentTypeError(f"{value} does not split over the {ranks} processes of this torchrun job; "
                                         f"pass a multiple of {ranks} (it is the global batch: each process takes "
                                         "an equal share)")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _number(text: str) -> float:
    """A finite float (nan and inf are refused: they would silently switch a term off or on)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _number_where(holds: Callable[[float], bool], rule: str) -> Callable[[str], float]:
    """An argparse type: a finite float for which `holds` is true; `rule` says which ones do."""
    def parse(text: str) -> float:
        value = _number(text)
        if not holds(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text!r}")
        return value

    return parse


_positive_float = _number_where(lambda v: v > 0, "must be positive")
_depth_scale = _number_where(lambda v: UNIT_RANGE[0] <= v <= UNIT_RANGE[1],
                             f"must be metres per unit between {UNIT_RANGE[0]:g} and {UNIT_RANGE[1]:g} (0.001 for "
                             "millimetres, 1 for metres)")
_weight = _number_where(lambda v: v >= 0, "a loss weight must be at least 0 (0 turns the term off)")
_fraction = _number_where(lambda v: 0 <= v < 1, "must be in [0, 1)")  # --val-fraction, --ema: 0 is none
_share = _number_where(lambda v: 0 < v <= 1, "must be in (0, 1]")  # --bn-layers
_smooth = _number_where(lambda v: 0 < v <= 1, "must be in (0, 1] (1 = no smoothing)")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated class names")
    return names


def _indices(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, e.g. 6,13,16, got {text!r}") from None


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX in metres, e.g. 0.2:8, got {text!r}") from None
    if not (math.isfinite(hi) and hi > lo >= 0):
        raise argparse.ArgumentTypeError(f"need 0 <= MIN < MAX, got {text!r}")
    return lo, hi


# how an option of AdaptConfig (adapt.config.option) is parsed, by its `kind`
OPTION_KINDS: dict[str, Callable[[str], object]] = {
    "int": int, "positive_int": _positive_int, "positive_float": _positive_float, "weight": _weight,
    "share": _share, "fraction": _fraction, "repeats": _repeats, "range": _range, "batch_size": _batch_size,
    "depth_scale": _depth_scale,
}


def _config_options(parser: argparse.ArgumentParser, levers: argparse._ArgumentGroup) -> None:
    """adapt's options, one per AdaptConfig field that declares one (adapt.config.option): flag, parser or
    choices, help with the default. Every one defaults to None here, so that AdaptConfig.for_method puts
    the method's preset, then the field's default, where none is given."""
    from socket_edge.adapt.config import options

    for f in options():
        meta = f.metadata
        target = levers if meta["group"] == "levers" else parser
        default = f.default
        shown = f"{default[0]:g}:{default[1]:g}" if isinstance(default, tuple) else \
            ("on" if default else "off") if isinstance(default, bool) else default
        help_text = meta["help"] if default is None else f"{meta['help']} (default {shown})"
        flag = "--" + f.name.replace("_", "-")
        if meta["kind"] == "bool":
            target.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif meta["choices"]:
            target.add_argument(flag, choices=meta["choices"], default=None, help=help_text)
        else:
            target.add_argument(flag, type=OPTION_KINDS[meta["kind"]] if meta["kind"] else str, default=None,
                                help=help_text)


# what each training command imports on its way (beyond torch and torchvision), all of the `train`
# extra: checked before its first step, so that no trained epoch is lost to a missing module
# (adapt and distill draw curves.png before writing their model)
TRAIN_NEEDS = {"train-source": (), "adapt": ("matplotlib",), "distill": ("matplotlib",), "export": ("onnx",),
               "demo": ("onnx", "matplotlib")}


def _require_train(command: str, *more: str) -> None:
    """Refuse a command where a module of the `train` extra that it needs (TRAIN_NEEDS, and `more`
    for its options) is not installed: one line naming the extra, before anything is done."""
    for module in ("torch", "torchvision", *TRAIN_NEEDS[command], *more):
        require(module, "train", needed_by=f"socket-edge {command}")


def _rank() -> int:
    """This process's rank in a torchrun job (0 alone, or without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def _claimed(args: argparse.Namespace, out: Path, inputs: dict, flag: str = "--out", folders: tuple = ()):
    """The command's claim on `out` and the `folders` it writes beside it (claim.claimed) with its
    --overwrite and command line; in a torchrun job rank 0 claims for all."""
    from socket_edge.claim import claimed

    if _rank() != 0:
        return nullcontext()

    return claimed(out, inputs, overwrite=getattr(args, "overwrite", False), command=args.command_line, flag=flag,
                   folders=folders)


@contextmanager
def _resumable() -> Iterator[None]:
    """A failed write of adapt or distill says that the run folder continues with --resume."""
    try:
        yield
    except OutputError as exc:
        raise OutputError(f"{exc}; then add --resume to the same command: the run folder keeps every finished "
                          "epoch") from None


def cmd_synth(args: argparse.Namespace) -> int:
    from socket_edge.claim import locked
    from socket_edge.data import synth

    with locked(args.out, args.command_line):
        summary = synth.generate(args.out, per_class=args.per_class, size=args.size, seed=args.seed,
                                 domains=args.domains, progress=not args.quiet)
    total = sum(summary["counts"].values()) if "counts" in summary else None
    print(f"wrote {args.out}" + (f": {total} scenes" if total is not None else "")
          + f" in {summary.get('seconds', 0):.1f} s (task classes: {', '.join(synth.TASK_CLASSES)}; "
          f"TI classes: {', '.join(synth.TI_CLASSES)})")
    return 0


def _cache_dir_option(parser: argparse.ArgumentParser) -> None:
    """--cache-dir and --workers of the commands that train on image folders (data/cache.py,
    training/batches.py)."""
    parser.add_argument("--workers", type=_non_negative_int,
                        help="DataLoader processes that read the batches (default: none on the CPU, up to 4 per "
                             "GPU process)")
    parser.add_argument("--cache-dir", type=Path,
                        help="folder of the decoded-frame cache (default $SOCKET_EDGE_CACHE, else "
                             "~/.cache/socket-edge/frames); safe to delete")


def cmd_train_source(args: argparse.Namespace) -> int:
    _require_train("train-source")
    from socket_edge.models.train import TrainConfig, train_source

    config = TrainConfig(
        arch=args.arch, weights=args.weights, head=args.head, modality=args.modality, img_size=args.img_size,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, val_fraction=args.val_fraction,
        depth_scale=args.depth_scale, depth_range=args.depth_range, seed=args.seed, device=args.device,
    )
    with _claimed(args, args.out, {"--data": args.data, "--weights": Path(args.weights)}):
        result = train_source(args.data, args.out, config, progress=not args.quiet, classes=args.classes,
                              command=args.command_line, cache_dir=args.cache_dir, workers=args.workers)
    val = f", held-out accuracy {result['val_accuracy']:.1f}% (n={result['val_n']})" if "val_accuracy" in result else ""
    if _rank() != 0:
        return 0
    print(f"wrote {args.out}: trained on {result['train_n']} images in {result['seconds']:.0f} s{val}")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    _require_train("adapt")
    from socket_edge.adapt.config import AdaptConfig, default_method, options
    from socket_edge.adapt.repeats import repeats_folder
    from socket_edge.adapt.validators import HOLDOUT_FRACTION
    from socket_edge.training.run_folder import run_folder_for

    if args.select and (args.method is not None or args.ti_adapter is not None):
        raise UsageError("--select auto runs its own candidates (base, socket, socket with --ti-adapter); "
                         "drop --method/--ti-adapter, or drop --select to run one method")
    if args.select_by is not None and (not args.select or args.eval_data is not None):
        raise UsageError("--select-by ranks the candidates of --select auto without labels; with --eval-data they "
                         "are ranked by the accuracy on it" if args.select else "--select-by needs --select auto")
    if args.select and (args.ti_source is None or args.ti_target is None):
        raise UsageError("--select auto needs TI pairs (--ti-source DIR --ti-target DIR): two of its candidates train "
                         "on them and its label-free validator scores a held-out fifth of them")
    if args.select and args.repeats not in (None, 1):
        raise UsageError(f"--select auto ranks single adaptations by their own epochs; drop --repeats {args.repeats}, "
                         f"then run the method it picks again with --repeats {args.repeats}")
    if args.select_by in ("ti_agree", "ti_kl") and args.ti_holdout == 0:
        raise UsageError(f"--select-by {args.select_by} scores a held-out share of the TI pairs; drop --ti-holdout 0 "
                         "or pick another validator")
    ti_pairs = args.ti_source is not None and args.ti_target is not None
    method = args.method or default_method(len(args.source), ti_pairs)
    if args.method is None and not args.select and ti_pairs and _rank() == 0:
        print(f"socket-edge: note: no --method: {method} (SOCKET three times, averaged: 3× the time and the inference "
              "of --method socket), the best with TI pairs on the mean of our study; check it with --eval-data, or "
              "let --select auto pick (docs/methods.md)",
              file=sys.stderr)
    chosen = {f.name: getattr(args, f.name) for f in options()}
    if args.select and chosen["ti_holdout"] is None:  # its TI validators score a held-out share
        chosen["ti_holdout"] = HOLDOUT_FRACTION
    config = AdaptConfig.for_method(method, modality=args.modality, **chosen)
    inputs = {"--source": args.source, "--target": args.target, "--ti-source": args.ti_source,
              "--ti-target": args.ti_target, "--eval-data": args.eval_data}
    if args.select:
        if args.resume:
            raise UsageError("--select auto resumes by itself (finished candidates are reused); drop --resume")
        return _select_auto(args, config, inputs)
    args.overwrite = args.overwrite or args.resume  # a resumed run replaces its own output
    folder = run_folder_for(args.out) if config.repeats == 1 else repeats_folder(args.out)
    with _claimed(args, args.out, inputs, folders=(folder,)), _resumable():
        result = _adapt_run(args, config, args.out, args.resume, args.overwrite)
    if _rank() != 0:
        return 0
    print(f"wrote {args.out} ({method}{_adapted(result)}) in {result['seconds']:.0f} s; "
          f"{'run folder' if config.repeats == 1 else 'repeats in'} {folder}")
    return 0


def _adapted(result: dict) -> str:
    """ζ (the members' weights) and the accuracies on --eval-data of an adaptation's result, or of its repeats'."""
    if "repeats" not in result:
        zeta = "/".join(f"{z:.3f}" for z in result["zeta"])
        acc = (f", accuracy {result['epochs'][0]['accuracy']:.1f}% unadapted → {result['accuracy']:.1f}% on "
               f"--eval-data ({_overlap(**result['eval'])})") if "accuracy" in result else ""
        return f", ζ {zeta}{acc}"
    seeds = [r["seed"] for r in result["repeats"]]
    text = f", {len(seeds)} repeats (seeds {seeds[0]}–{seeds[-1]}) averaged: {len(result['zeta'])} members"
    if "accuracy" in result:
        each = " / ".join(f"{r['accuracy']:.1f}" for r in result["repeats"])
        text += (f", accuracy {result['unadapted_accuracy']:.1f}% unadapted → {each}% each → "
                 f"{result['accuracy']:.1f}% averaged on --eval-data ({_overlap(**result['eval'])})")
    return text


def _overlap(n: int, adapted_on: int) -> str:
    """Whether an accuracy was measured on the frames adapted on (as the paper does) or on others."""
    if adapted_on == n:
        return "transductive: adapted on"
    if adapted_on == 0:
        return "inductive: none adapted on"
    return f"{adapted_on} of {n} frames adapted on"


def _adapt_run(args: argparse.Namespace, config, out: Path, resume: bool, overwrite: bool) -> dict:
    """One adaptation with the command's inputs into `out`."""
    from socket_edge.adapt.trainer import adapt

    return adapt(config, args.source, args.target, out, ti_source=args.ti_source, ti_target=args.ti_target,
                 eval_data=args.eval_data, classes=args.classes, ti_classes=args.ti_classes, resume=resume,
                 overwrite=overwrite, progress=not args.quiet, command=args.command_line, cache_dir=args.cache_dir,
                 workers=args.workers)


def _select_auto(args: argparse.Namespace, config, inputs: dict) -> int:
    """adapt --select auto: the candidates one after the other, the winner copied to --out."""
    from socket_edge.adapt import select
    from socket_edge.adapt.trainer import described_inputs
    from socket_edge.claim import locked
    from socket_edge.training.run_folder import run_folder_for

    by = "accuracy" if args.eval_data is not None else args.select_by or select.DEFAULT_VALIDATOR
    configs = select.candidates(config, len(args.source))
    described = described_inputs(args.source, args.target, args.ti_source, args.ti_target, args.eval_data,
                                 args.classes, args.ti_classes)
    say = print if _rank() == 0 else (lambda line: None)

    def candidate(c, out: Path, resume: bool, overwrite: bool) -> dict:  # its run folder locked while it runs
        with locked(run_folder_for(out), args.command_line) if _rank() == 0 else nullcontext():
            return _adapt_run(args, c, out, resume, overwrite)

    with _claimed(args, args.out, inputs, folders=(select.candidates_folder(args.out),)), _resumable():
        winner, results = select.select(configs, args.out, by, candidate, described, say)
    say(select.table(results, by, winner))
    say(f"wrote {args.out} (candidate {winner}); candidates in {select.candidates_folder(args.out)}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    _require_train("distill")
    from socket_edge.distill.config import DistillConfig
    from socket_edge.training.run_folder import run_folder_for
    from socket_edge.distill.trainer import distill
    from socket_edge.distill.student import teacher_arch
    from socket_edge.models.zoo import blocks_to_drop

    arch = args.arch or teacher_arch(args.teacher)
    dropped = args.drop_features or (blocks_to_drop(arch, args.drop_blocks) if args.drop_blocks else ())
    config = DistillConfig(
        arch=arch, weights=args.weights, img_size=args.img_size, dropped_blocks=dropped, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, temperature=args.temperature, lambda_pl=args.lambda_pl,
        seed=args.seed, device=args.device,
    )
    inputs = {"the teacher": args.teacher, "--target": args.target, "--ti-target": args.ti_target,
              "--eval-data": args.eval_data}
    args.overwrite = args.overwrite or args.resume  # a resumed run replaces its own output
    with _claimed(args, args.out, inputs, folders=(run_folder_for(args.out),)), _resumable():
        result = distill(config, args.teacher, args.target, args.out, ti_target=args.ti_target,
                         eval_data=args.eval_data, classes=args.classes, ti_classes=args.ti_classes,
                         resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                         command=args.command_line, cache_dir=args.cache_dir, workers=args.workers)
    acc = ""
    if "accuracy" in result:
        acc = f", accuracy {result['accuracy']:.1f}% (teacher {result['teacher_accuracy']:.1f}%)"
    student = result["student"]
    if _rank() != 0:
        return 0
    print(f"wrote {args.out} ({student['arch']}, {student['size'][0]} px, from {student['start']}): agreement with "
          f"the teacher {result['agreement']:.1f}% on {result['target_n']} target images{acc} in "
          f"{result['seconds']:.0f} s; run folder {run_folder_for(args.out)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.plot:  # before evaluating, not after
        require("matplotlib", "plot", needed_by="eval --plot")
    from socket_edge.evaluation import evaluate, plot_confusion

    claim = _claimed(args, args.plot, {"the model": args.model, "--data": args.data}, flag="--plot") \
        if args.plot else nullcontext()
    with claim:
        result = evaluate(args.model, args.data, modality=args.modality, depth_scale=args.depth_scale,
                          batch_size=args.batch_size, device=args.device, progress=not args.quiet and not args.json,
                          classes=args.classes)
        if args.plot:
            plot_confusion(result, args.plot, title=f"{Path(args.model).name} on {args.data}: "
                                                    f"{result['accuracy']:.1f}% (n={result['n']})")
    if args.json:
        print(jsontext.dumps(result))
        return 0
    result = printable_data(result)  # class names and paths from outside: no control sequences reach the terminal
    how = result["modality"] if result["modality"] == result["trained_on"] else \
        f"{result['modality']}, unadapted from {result['trained_on']}"
    print(f"{args.model} on {args.data} ({how}): accuracy {result['accuracy']:.2f}% (n={result['n']})")
    width = max(len(name) for name in result["per_class"])
    for name, acc in result["per_class"].items():
        print(f"  {name:<{width}}  {acc:6.2f}%")
    if args.plot:
        print(f"confusion matrix: {args.plot}")
    return 0


def _batch_range(text: str) -> tuple[int, int, int]:
    try:
        low, opt, high = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:OPT:MAX batch sizes, e.g. 1:4:8, got {text!r}") from None
    if not 1 <= low <= opt <= high:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= OPT <= MAX, got {text!r}")
    return low, opt, high


def cmd_export(args: argparse.Namespace) -> int:
    from socket_edge.export.summary import describe

    if Path(args.model).suffix == ".onnx":  # an engine from an exported graph, on the device, without torch
        summary = _engine_from_onnx(args)
    else:
        _require_train("export", *(("onnxconverter_common",) if args.fp16 else ()))
        from socket_edge.export.exporter import default_out, export
        from socket_edge.models.artifact import refuse_exported

        refuse_exported(args.model)  # before its default --out (the same name) is claimed
        out = args.out or default_out(args.model, args.format)
        with _claimed(args, out, {"the model": args.model, "--calib": args.calib, "--check-data": args.check_data}):
            summary = export(args.model, args.format, out=out, opset=args.opset, batch=args.batch,
                             dynamic_batch=args.dynamic_batch, fp16=args.fp16, int8=args.int8, calib=args.calib,
                             calib_frames=args.calib_frames, calib_method=args.calib_method,
                             int8_scheme=args.int8_scheme, prune_zeta=args.prune_zeta, check_data=args.check_data,
                             progress=not args.quiet and not args.json, command=args.command_line)
    lines, warnings = describe(printable_data(summary))
    print(jsontext.dumps(summary) if args.json else "\n".join(lines))
    for warning in warnings:
        print(f"socket-edge: warning: {printable(warning)}", file=sys.stderr)
    return 0


def _engine_from_onnx(args: argparse.Namespace) -> dict:
    """`export MODEL.onnx --format engine`: the TensorRT engine of a graph export wrote, built
    where it will run (export/engine_from_onnx.py)."""
    from socket_edge.export import formats
    from socket_edge.export.engine_from_onnx import build, refuse_graph_options

    if formats.get_format(args.format).name != "engine":
        raise UsageError(f"{args.model} is already an ONNX graph; `export {args.model} --format engine` builds a "
                         "TensorRT engine from it, and `export MODEL.pt` makes a new graph")
    refuse_graph_options({"--opset": args.opset, "--fp16": args.fp16, "--int8": args.int8, "--calib": args.calib,
                          "--calib-frames": args.calib_frames, "--calib-method": args.calib_method,
                          "--int8-scheme": args.int8_scheme, "--prune-zeta": args.prune_zeta})
    formats.validate("engine", {"--batch": args.batch, "--dynamic-batch": args.dynamic_batch})
    out = args.out or Path(args.model).with_suffix(".engine")
    if out.suffix != ".engine":
        raise UsageError(f"--out {out} does not end in .engine, the engine format's suffix")
    with _claimed(args, out, {"the model": args.model, "--check-data": args.check_data}):
        return build(args.model, out, batch=args.batch, dynamic_batch=args.dynamic_batch, check_data=args.check_data,
                     progress=not args.quiet and not args.json)


def cmd_inspect(args: argparse.Namespace) -> int:
    from socket_edge.backends import summarize
    from socket_edge.inspection import describe

    summary = summarize(args.model)
    print(jsontext.dumps(summary, indent=2) if args.json else describe(printable_data(summary)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from socket_edge.backends import open_model
    from socket_edge.runtime.outputs import LinePrinter, VideoSaver, Window, check_video_name
    from socket_edge.runtime.pipeline import run
    from socket_edge.runtime.uri import parse_source

    if args.save:
        check_video_name(args.save)  # before the model is opened or anything claimed
    specs = [parse_source(uri, depth_scale=args.depth_scale) for uri in args.source]
    if len(specs) > 1:
        return _run_streams(args, specs)
    spec = specs[0]
    inputs = {"the model": args.model, "--source": _source_path(spec)}
    with ExitStack() as stack:
        view = _live_view(args, specs, stack)
        model = open_model(args.model, providers=args.providers, threads=args.threads, spinning=args.spin,
                           device=args.device)
        modality = model.contract.modality
        outputs: list = [LinePrinter(args.json)] if not args.quiet or args.json else []
        if args.show:
            outputs.append(Window(modality))
        if view:
            outputs.append(_started(view, model, args.model).stream(0))
        if args.save:
            stack.enter_context(_claimed(args, args.save, inputs, flag="--save"))
            outputs.append(VideoSaver(args.save, modality))
        bag = _record_bag(args, stack, inputs, model.contract.class_names)
        if bag is not None:
            outputs.append(bag.output(0))
        summary = run(model, spec, outputs, smooth=args.smooth, max_frames=args.max_frames, top_k=args.top_k,
                      backoff_s=args.reopen_backoff)
        recorded = bag is not None and not summary.lost and bag.commit()
    print(printable(summary.describe(), keep_newlines=True), file=sys.stderr, flush=True)
    if args.save and summary.frames:
        print(f"annotated video: {args.save}", file=sys.stderr)
    if recorded:
        print(f"ROS 2 bag: {args.record} ({bag.messages} messages)", file=sys.stderr)
    if summary.lost:
        unrecorded = f"; nothing was written to {args.record}" if bag is not None else ""
        print(f"socket-edge: error: {printable(summary.lost)}{unrecorded}", file=sys.stderr)
        return 1
    return 130 if summary.interrupted else 0


def _record_bag(args: argparse.Namespace, stack: ExitStack, inputs: dict, class_names):
    """The --record bag (runtime.ros2_record), claimed for the block and dropped at its end unless
    committed; None without --record."""
    if args.record is None:
        return None
    from socket_edge.runtime.ros2_record import ClassificationBag

    bag = ClassificationBag(args.record, class_names)
    stack.enter_context(_claimed(args, args.record, inputs, flag="--record"))
    stack.callback(bag.discard)
    return bag


def _source_path(spec) -> Path | list[Path] | None:
    """The file or folder a source reads (for a glob, the files it matches); None for a camera or
    a stream, which no output can overwrite."""
    import glob

    if spec.live:
        return None
    if spec.kind == "images" and any(c in spec.target for c in "*?["):
        return [Path(p) for p in glob.glob(spec.target)]
    return Path(spec.target)


def _run_streams(args: argparse.Namespace, specs: list) -> int:
    """`run` with several --source: one batched model over all streams (runtime.multistream); exit 1
    when any stream failed or lost frames, else 130 after Ctrl-C, else 0."""
    from socket_edge.backends import open_model
    from socket_edge.runtime.multistream import run_streams
    from socket_edge.runtime.outputs import LinePrinter, VideoSaver, Window, per_stream_path

    inputs = {"the model": args.model, **{f"--source {i}": _source_path(spec) for i, spec in enumerate(specs)}}
    videos = [per_stream_path(args.save, i) for i in range(len(specs))] if args.save else []
    with ExitStack() as stack:
        view = _live_view(args, specs, stack)
        model = open_model(args.model, providers=args.providers, threads=args.threads, spinning=args.spin,
                           device=args.device)
        modality = model.contract.modality
        printer = LinePrinter(args.json, tagged=True) if not args.quiet or args.json else None
        outputs: list[list] = [[printer] if printer else [] for _ in specs]
        if view:
            _started(view, model, args.model)
            for index, stream_outputs in enumerate(outputs):
                stream_outputs.append(view.stream(index))
        for index, path in enumerate(videos):
            stack.enter_context(_claimed(args, path, inputs, flag="--save"))
            outputs[index].append(VideoSaver(path, modality))
        if args.show:
            for index, stream_outputs in enumerate(outputs):
                stream_outputs.append(Window(modality, title=f"socket-edge stream {index}"))
        bag = _record_bag(args, stack, inputs, model.contract.class_names)
        if bag is not None:
            for index, stream_outputs in enumerate(outputs):
                stream_outputs.append(bag.output(index))
        summary = run_streams(model, specs, outputs, smooth=args.smooth, max_frames=args.max_frames,
                              top_k=args.top_k, backoff_s=args.reopen_backoff)
        recorded = bag is not None and not summary.problems and bag.commit()
    print(printable(summary.describe(), keep_newlines=True), file=sys.stderr, flush=True)
    if summary.error is not None:
        raise summary.error  # after the summary: what each stream did before the run ended
    for path, stream in zip(videos, summary.streams):
        if stream.frames:
            print(f"annotated video: {path}", file=sys.stderr)
    if recorded:
        print(f"ROS 2 bag: {args.record} ({bag.messages} messages)", file=sys.stderr)
    for line in summary.problems:
        print(f"socket-edge: error: {printable(line)}", file=sys.stderr)
    if summary.problems and bag is not None:
        print(f"socket-edge: error: nothing was written to {args.record}: a stream failed", file=sys.stderr)
    if summary.problems:
        return 1
    return 130 if summary.interrupted else 0


def _live_view(args: argparse.Namespace, specs: list, stack: ExitStack):
    """`--view`: the live view's server, bound (a port in use fails before the model opens) and
    closed with `stack`; None without --view."""
    if args.view is None:
        return None
    from socket_edge.runtime.view import LiveView

    return stack.enter_context(LiveView(args.view, [spec.uri for spec in specs]))


def _started(view, model, path: Path):
    """Start serving `view` for `model` (read from `path`) and say where, and, bound beyond this
    machine, who can watch."""
    view.start(Path(path).name, model.contract.modality, model.contract.class_names)
    host, port = view.address[0], view.server.server_address[1]
    if host in ("127.0.0.1", "localhost", "::1"):
        target = "[::1]" if host == "::1" else host
        where = f"this machine only; from a laptop: ssh -L {port}:{target}:{port} THIS-HOST, then open " \
                f"http://localhost:{port}/"
    else:
        where = "anyone who can reach this address can watch: no password, no encryption"
    print(f"live view: {view.url} ({where})", file=sys.stderr, flush=True)
    return view


def _view_address(text: str) -> tuple[str, int]:
    from socket_edge.runtime.view import parse_address

    try:
        return parse_address(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--view {text!r} ")) from None


def cmd_bench(args: argparse.Namespace) -> int:
    from socket_edge.runtime.bench import bench, describe
    from socket_edge.runtime.uri import parse_source

    specs = [parse_source(uri, depth_scale=args.depth_scale) for uri in args.source or []]
    result = bench(args.model, specs, frames=args.frames, threads=args.threads, spinning=args.spin,
                   providers=args.providers, device=args.device)
    print(jsontext.dumps(result) if args.json else describe(printable_data(result)))
    problems = result.get("streams", {}).get("problems", [])
    for line in problems:  # as `run` says them, and exit 1 as `run` does
        print(f"socket-edge: error: {printable(line)}", file=sys.stderr)
    return 1 if problems else 0


def cmd_demo(args: argparse.Namespace) -> int:
    _require_train("demo")
    from socket_edge.demo import DemoConfig, run_demo

    from socket_edge.claim import locked

    config = DemoConfig.quick(seed=args.seed) if args.quick else DemoConfig(seed=args.seed)
    with locked(args.out, args.command_line):  # a re-run continues the folder: no --overwrite needed
        run_demo(config, args.out, fresh=args.fresh, progress=not args.quiet, command=args.command_line)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from socket_edge.capture.collect import collect
    from socket_edge.capture.layout import Layout
    from socket_edge.capture.realsense import PairedStream
    from socket_edge.capture.selection import Selector
    from socket_edge.claim import locked, refuse_inputs

    if args.source.startswith("ros2bag://"):
        from socket_edge.capture.ros2bag import BagPairedStream

        stream = BagPairedStream(args.source, args.stream)
        if args.role == "ti" and not stream.paired:
            raise UsageError(f"--as ti needs colour + {stream.stream} pairs: add &colour_topic=COLOUR_TOPIC to "
                             f"{args.source} (e.g. /camera/camera/color/image_raw)")
    else:
        stream = PairedStream(args.source, args.stream)
    layout = Layout(args.out, args.role, stream.stream, args.class_name)
    recording = Path(stream.target) if stream.kind == "recording" else None
    refuse_inputs(args.out, {"the source": recording, "--model": args.model}, "--out")
    if args.model is not None and args.class_name:
        _refuse_task_class(args.model, args.class_name, args.role)
    with locked(args.out, args.command_line):
        summary = collect(stream, layout, Selector(args.every, args.min_change), max_frames=args.max,
                          seconds=args.seconds, progress=not args.quiet)
    print(printable(summary.describe(layout), keep_newlines=True), file=sys.stderr, flush=True)
    unpaired = stream.report() if hasattr(stream, "report") else None
    if unpaired:
        print(f"socket-edge: note: {printable(unpaired)}", file=sys.stderr, flush=True)
    return 130 if summary.interrupted else 0


def _refuse_task_class(model: Path, class_name: str, role: str) -> None:
    """TI frames must not be of a task class of `model`; eval frames must be of one."""
    from socket_edge.backends import summarize

    names = list(summarize(model)["contract"]["class_names"])
    if role == "ti" and class_name in names:
        raise UsageError(f"--class {class_name} is a task class of {model}; TI pairs must show other scenes "
                         "(SOCKET's TI data is task-irrelevant): pick another class name")
    if role == "eval" and class_name not in names:
        raise UsageError(f"--class {class_name} is not a class of {model} (it has {', '.join(names)}); eval "
                         "frames are labelled with the model's class names")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = Parser(
        prog="socket-edge",
        description="RGB-trained classifiers to depth and infrared cameras (SOCKET, ECCV 2022).",
    )
    parser.add_argument("--version", action="version", version=f"socket-edge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("synth", parents=[common], help="render the built-in synthetic RGB-D scenes",
                       description="Render procedural indoor scenes as paired RGB, 16-bit depth (mm) and IR images: "
                                   "OUT/<domain>/<rgb|depth|ir>/<class>/<id>.png.")
    p.add_argument("out", type=Path, help="output folder (must not exist or be empty)")
    p.add_argument("--per-class", type=_positive_int, default=50, help="scenes per class and domain (default 50)")
    p.add_argument("--size", type=_positive_int, default=64, help="image side in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--domains", nargs="+", default=None, help="sensor domains to render (default: all)")
    p.set_defaults(handler=cmd_synth)

    p = sub.add_parser("train-source", parents=[common], help="train a source classifier on labelled class folders",
                       description="Supervised training of one classifier on ROOT/<class>/<image> "
                                   "(label smoothing 0.1, the paper's bottleneck head).")
    p.add_argument("--data", type=Path, required=True, help="class folders ROOT/<class>/<image>")
    p.add_argument("--classes", type=_names, help="use only these class folders (comma-separated)")
    p.add_argument("--arch", default="mobilenet_v2", help="torchvision architecture (default mobilenet_v2)")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (torchvision weights; torch's cache when offline), none, or a state-dict FILE")
    p.add_argument("--head", choices=("paper", "native"), default="paper",
                   help="paper: bottleneck 256 + BN + weight-normed linear (default); native: keep the last Linear")
    p.add_argument("--modality", choices=MODALITIES, default="rgb")
    p.add_argument("--out", type=Path, required=True, help="artifact to write (.pt)")
    p.add_argument("--epochs", type=_positive_int, default=20)
    p.add_argument("--img-size", type=_positive_int, default=224)
    p.add_argument("--batch-size", type=_batch_size, default=32)
    p.add_argument("--lr", type=_positive_float, default=1e-2, help="head learning rate; backbone gets ×0.1")
    p.add_argument("--val-fraction", type=_fraction, default=0.1,
                   help="held-out fraction per class, in [0, 1) (default 0.1; 0: no held-out images)")
    p.add_argument("--depth-scale", type=_depth_scale, default=DEFAULT_DEPTH_SCALE,
                   help="metres per depth unit (default 0.001 = mm)")
    p.add_argument("--depth-range", type=_range, default=(0.0, 10.0), help="valid depth MIN:MAX in metres")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _cache_dir_option(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(handler=cmd_train_source)

    p = sub.add_parser("adapt", parents=[common], help="adapt RGB source models to a depth/IR target (SOCKET)",
                       description="Source-free cross-modal adaptation (SOCKET, ECCV 2022) and its baselines. "
                                   "Writes the ζ-weighted ensemble and a run folder OUT-run/ beside it, after the "
                                   "whole --out name (adapted.pt → adapted.pt-run/: config, metrics.jsonl, "
                                   "curves.png).")
    p.add_argument("--source", type=Path, action="append", required=True,
                   help="source model (.pt); repeat for several sources")
    p.add_argument("--target", type=Path, required=True,
                   help="unlabeled target images (flat, or class folders whose labels are never read for training)")
    p.add_argument("--modality", choices=MODALITIES, required=True, help="the target modality")
    p.add_argument("--ti-source", type=Path, help="TI images in the sources' modality (paired by relative path)")
    p.add_argument("--ti-target", type=Path, help="the same TI scenes in the target modality")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="default: socket-plus when TI pairs are given (the best on the mean over the settings of "
                        "docs/benchmarks/faithful_socket.md), else shot with one source, decision (SHOT with learned "
                        "ζ) with several; socket (the paper's SOCKET: Eq. 3's L_d and the unsquared L_TI, trained on "
                        "the TI pairs), socket-plus (socket three times with seeds SEED…SEED+2, averaged into one "
                        "model: --repeats 3), or none (unadapted); docs/methods.md says when to choose which")
    p.add_argument("--select", choices=("auto",),
                   help="auto: run the candidates base (SHOT, or DECISION on several sources), socket and "
                        "socket --ti-adapter one after the other into OUT.candidates/ (resumable), and keep "
                        "the one the label-free validator --select-by ranks first, or, with --eval-data (20–50 "
                        "labelled target frames), the most accurate on them. Costs the sum of the three runs (about 2.6× "
                        "one socket run)")
    p.add_argument("--select-by", choices=VALIDATORS,
                   help="label-free validator of --select auto without --eval-data (default agree: the share of "
                        "target frames whose prediction agrees with its centroid pseudo-label, the best ranked in "
                        "docs/benchmarks/select_auto.md; im: the information-maximisation objective; ti_agree/ti_kl: "
                        "agreement/KL with the frozen sources on a held-out fifth of the TI pairs; see README)")
    p.add_argument("--out", type=Path, required=True, help="ensemble artifact to write (.pt)")
    p.add_argument("--classes", type=_names, help="read only these class folders of --target and --eval-data")
    p.add_argument("--ti-classes", type=_names, help="read only these class folders of the TI roots")
    p.add_argument("--eval-data", type=Path,
                   help="labelled target data to report accuracy per epoch (never used for training)")
    _config_options(p, p.add_argument_group("loss terms and levers (defaults: the paper's, or the socket-plus "
                                            "preset)"))
    _cache_dir_option(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last epoch")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in the run folder")
    p.set_defaults(handler=cmd_adapt)

    p = sub.add_parser("distill", parents=[common], help="one small student from an adapted ensemble, for the edge",
                       description="Train one student network on the unlabeled target images (and TI target images) "
                                   "to match the adapted ensemble's class probabilities: T²·KL at temperature T plus "
                                   "λ_pl × cross-entropy on the ensemble's pseudo-labels. The student is an ordinary "
                                   "model file with the target modality's contract (eval, export and run take it). "
                                   "Writes a run folder OUT-run/ beside it, after the whole --out name "
                                   "(student.pt → student.pt-run/: config, metrics.jsonl, curves.png).")
    p.add_argument("teacher", type=Path, help="adapted ensemble (.pt, the output of socket-edge adapt)")
    p.add_argument("--target", type=Path, required=True,
                   help="unlabeled target images (flat, or class folders whose labels are never read for training)")
    p.add_argument("--ti-target", type=Path, help="more unlabeled target-modality images (e.g. the TI target images)")
    p.add_argument("--out", type=Path, required=True, help="student artifact to write (.pt)")
    p.add_argument("--arch", help="student architecture (default: that of the teacher member with the largest ζ, "
                                  "which the student then starts from)")
    p.add_argument("--weights", choices=("auto", "teacher", "imagenet", "none"), default="auto",
                   help="the student's start: a copy of the teacher member of the same architecture, torchvision's "
                        "ImageNet weights (torch's cache, offline), or random; auto (default): teacher, else "
                        "imagenet when cached, else none")
    p.add_argument("--classes", type=_names, help="read only these class folders of --target and --eval-data")
    p.add_argument("--ti-classes", type=_names, help="read only these class folders of --ti-target")
    p.add_argument("--eval-data", type=Path,
                   help="labelled target data to report accuracy per epoch (never used for training)")
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--img-size", type=_positive_int, default=None,
                   help="the student's input size (default: the teacher's)")
    drop = p.add_mutually_exclusive_group()
    drop.add_argument("--drop-blocks", type=int, metavar="N",
                      help="a shallower mobilenet_v2 student: leave out N of its 10 residual blocks (stride 1, "
                           "input = output channels), the last one of each stage first, deepest stage first "
                           "(features 16, 13, 10, 6, 3, then 15, 12, 9, 5, then 8); the student starts from its "
                           "start's weights minus those blocks'. Fewer operators: at small inputs, lower latency")
    drop.add_argument("--drop-features", type=_indices, metavar="I,J",
                      help="the same with the residual blocks named by their mobilenet_v2 features index "
                           "(3, 5, 6, 8, 9, 10, 12, 13, 15, 16)")
    p.add_argument("--batch-size", type=_batch_size, default=32)
    p.add_argument("--lr", type=_positive_float, default=1e-2,
                   help="head lr; a pretrained backbone gets ×0.1 (default 0.01)")
    p.add_argument("--temperature", type=_positive_float, default=2.0, help="KL temperature T (default 2)")
    p.add_argument("--lambda-pl", type=_weight, default=0.5, help="pseudo-label cross-entropy weight (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _cache_dir_option(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last epoch")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in the run folder")
    p.set_defaults(handler=cmd_distill)

    p = sub.add_parser("eval", parents=[common], help="accuracy of a model on labelled images",
                       description="Accuracy, per-class accuracy and confusion matrix on ROOT/<class>/<image>. "
                                   "The modality comes from the model's input contract.")
    p.add_argument("model", type=Path, help="model file: artifact (.pt), exported graph (.onnx) or engine (.engine)")
    p.add_argument("--data", type=Path, required=True, help="class folders ROOT/<class>/<image>")
    p.add_argument("--classes", type=_names, help="use only these class folders (comma-separated)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", type=Path, help="write the confusion matrix as a PNG")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    p.add_argument("--modality", choices=MODALITIES, default=None,
                   help="feed the model this modality as it is (the unadapted cross-modal baseline); "
                        "default: the model's own")
    p.add_argument("--depth-scale", type=_depth_scale, default=None,
                   help="metres per unit of these depth files, if not the model's unit (default 0.001)")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("export", parents=[common], help="one ONNX graph or TensorRT engine from a model (.pt)",
                       description="Export an ensemble (or a single source model) as one file computing "
                                   "Σ_k ζ_k softmax(g_k(f_k(preprocess(x)))) end to end, with its input contract "
                                   "inside. Input: float32 raw sensor values N×C×H×W after the host-side resize. "
                                   "An exported .onnx with --format engine: its TensorRT engine, built on the device "
                                   "that runs it (a Jetson), without torch; the engine has the graph's precision.")
    p.add_argument("model", type=Path, help="model artifact (.pt), or an exported .onnx with --format engine")
    p.add_argument("--format", default="onnx", help="onnx (default) or engine (a TensorRT plan and its sidecar, built on the GPU that runs it)")
    p.add_argument("--out", type=Path, help="file to write (default: beside the model, with the format's suffix)")
    p.add_argument("--opset", type=_positive_int, help="ONNX opset (default 17)")
    p.add_argument("--batch", type=_positive_int, help="a fixed batch size in the graph (default: any size)")
    p.add_argument("--dynamic-batch", type=_batch_range, metavar="MIN:OPT:MAX",
                   help="batch range (the TensorRT optimisation profile; engine default 1:1:8)")
    p.add_argument("--fp16", action="store_true", help="fp16 weights and compute (input and output stay float32)")
    p.add_argument("--int8", action="store_true",
                   help="a Q/DQ int8 graph (per-channel weights; input normalisation, softmax and ζ sum stay float32) "
                        "calibrated on --calib; with --format engine, an explicit int8 TensorRT engine built from it")
    p.add_argument("--calib", type=Path, metavar="DIR",
                   help="target images for int8 calibration, class folders or flat, in the model's modality (with --int8)")
    p.add_argument("--calib-frames", type=_positive_int, metavar="N",
                   help="calibrate on at most N images of --calib, a seeded draw (default 200)")
    p.add_argument("--calib-method", choices=("minmax", "entropy", "percentile"),
                   help="how activation ranges are set from the calibration images (default percentile)")
    p.add_argument("--int8-scheme", choices=("cpu", "tensorrt"),
                   help="onnx format: uint8 activations with zero points, fast in ONNX Runtime on x86 (cpu, default), "
                        "or symmetric int8 that TensorRT (trtexec, ONNX Runtime's TensorRT provider) builds (tensorrt)")
    p.add_argument("--prune-zeta", type=_positive_float, metavar="T",
                   help="drop members whose ζ < T, renormalise, and report accuracy before/after on --check-data")
    p.add_argument("--check-data", type=Path,
                   help="target images for the parity check (class folders also give accuracy); "
                        "default: generated frames")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("inspect", help="what a model file is and what input it expects",
                       description="Print a model's input contract, members, ζ and provenance.")
    p.add_argument("model", type=Path, help="model artifact (.pt), exported graph (.onnx) or engine (.engine)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_inspect)

    from socket_edge.runtime.uri import SCHEMES

    p = sub.add_parser("run", help="classify a camera, recording, video or image stream frame by frame",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run an exported model on a stream: capture thread, the model's host-side "
                                   "preprocessing, inference, outputs. The summary (frames, FPS, p50/p95 per stage) "
                                   "goes to stderr at the end, after Ctrl-C too (exit 130).",
                       epilog=SCHEMES)
    p.add_argument("model", type=Path, help="exported .onnx (ONNX Runtime), .engine (TensorRT) or .pt (PyTorch, dev)")
    p.add_argument("--source", required=True, action="append",
                   help="source URI (listed below); repeat it for several streams through one batched model: "
                        "each frame's line names its stream (0, 1, … in the order given), the summary has each "
                        "stream's health, a stream that ends or fails leaves the others running, and the exit code "
                        "is 1 if any stream failed")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per frame on stdout: "
                        "{stream, frame, timestamp, label, score, top_k, latency_ms}, and the source image's header "
                        "{stamp: {sec, nanosec}, frame_id} for a ROS 2 bag's frames")
    p.add_argument("--show", action="store_true",
                   help="overlay window, one per stream (needs an OpenCV build with GUI support)")
    p.add_argument("--save", type=Path,
                   help="write an annotated video (.mp4 or .avi); with several sources one per stream, the stream "
                        "in the name: out.mp4 → out.s0.mp4, out.s1.mp4, …")
    p.add_argument("--record", type=Path, metavar="OUT.mcap|OUT",
                   help="write the results as a ROS 2 bag: one vision_msgs/Classification per frame on "
                        "/socket_edge/streamN/classification (the header of a ROS 2 bag's image copied) and a "
                        "vision_msgs/LabelInfo on /socket_edge/label_info; OUT.mcap: one MCAP file, OUT: a rosbag2 "
                        "folder (needs the ros2 extra; docs/ros2.md)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --save video or --record file")
    p.add_argument("--view", type=_view_address, metavar="[HOST:]PORT",
                   help="serve a live web page of every stream (frame, label, score, a plot of the top scores, FPS, "
                        "latency) on PORT of 127.0.0.1, or of HOST when named (0.0.0.0: every interface, no "
                        "password: see docs/live-view.md); it never slows the model: the page shows the newest "
                        "frames it can, up to 15 a second")
    p.add_argument("--smooth", type=_smooth, metavar="ALPHA",
                   help="EMA of probabilities: s = ALPHA·p + (1−ALPHA)·s_prev (default: none)")
    p.add_argument("--max-frames", type=_positive_int, help="stop after N frames (of each stream)")
    p.add_argument("--top-k", type=_positive_int, default=3, help="classes in top_k (default 3)")
    p.add_argument("--providers", help="ONNX Runtime providers: auto (TensorRT, CUDA, CPU as available; default), "
                                       "cpu, cuda, tensorrt, or comma-separated provider names",
                   type=lambda text: text if "," not in text else [t.strip() for t in text.split(",") if t.strip()])
    p.add_argument("--threads", type=_positive_int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--no-spin", dest="spin", action="store_false",
                   help="idle ONNX Runtime threads sleep instead of busy-waiting: faster when decoding the source "
                        "takes CPU (compressed RealSense recordings on few cores), slower otherwise")
    p.add_argument("--depth-scale", type=_depth_scale, default=None,
                   help="metres per unit of depth files (videos, images) when the URI sets no depth_scale "
                        "(default: the model's unit); RealSense gives its own")
    p.add_argument("--reopen-backoff", type=_positive_float, default=0.5, metavar="S",
                   help="first wait before reopening a lost camera; doubles up to 8 s (default 0.5)")
    p.add_argument("--device", default="auto", help="for .pt models: auto, cpu or cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-frame lines (unless --json)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("bench", help="inference latency per backend, and the pipeline's overhead on a source",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Pure inference latency (p50/p95, batch 1) and throughput for each available "
                                   "backend; with --source, the full pipeline's FPS and its overhead.",
                       epilog=SCHEMES)
    p.add_argument("model", type=Path, help="exported .onnx, .engine or .pt")
    p.add_argument("--source", action="append",
                   help="source URI for the pipeline measurement (and the sample frame); repeat it for several "
                        "streams: the batched pipeline's total FPS against the same pipeline one frame at a time")
    p.add_argument("--frames", type=_positive_int, default=100, help="frames to time (default 100)")
    p.add_argument("--threads", type=_positive_int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--no-spin", dest="spin", action="store_false",
                   help="idle ONNX Runtime threads sleep instead of busy-waiting: faster when decoding the source "
                        "takes CPU (compressed RealSense recordings on few cores), slower otherwise")
    p.add_argument("--providers", help="one ONNX Runtime provider to measure (default: each available)")
    p.add_argument("--depth-scale", type=_depth_scale, default=None, help="metres per unit of depth files")
    p.add_argument("--device", default="auto", help="for .pt models: auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("collect", parents=[common], help="paired colour + depth/IR frames from a RealSense, for adapt",
                       description="Capture frames from a live RealSense (realsense://[SERIAL]) or a recording "
                                   "(.bag/.db3) holding a colour stream and a depth or infrared stream. The colour "
                                   "frame is aligned to the depth/IR camera's pixel grid (librealsense align); the "
                                   "depth/IR frame is never resampled. Depth is written as 16-bit PNG in "
                                   "millimetres, infrared as the stream gives it. --as ti: OUT/rgb/CLASS + "
                                   "OUT/depth|ir/CLASS (adapt --ti-source/--ti-target); --as target: OUT/ flat "
                                   "(adapt --target); --as eval: OUT/CLASS (eval --data). Numbering continues after "
                                   "existing files; Ctrl-C keeps what was written (exit 130).")
    p.add_argument("source", help="realsense://[SERIAL] or a RealSense recording (.bag/.db3); ?stream=depth|infrared "
                                  "as `run` takes it, or --stream; or a ROS 2 bag: ros2bag://PATH?topic=DEPTH_OR_IR"
                                  "&colour_topic=COLOUR[&tolerance_ms=N], pairs matched by header stamp (docs/ros2.md)")
    p.add_argument("--out", type=Path, required=True, help="output folder (appended to)")
    p.add_argument("--as", dest="role", required=True, choices=("ti", "target", "eval"),
                   help="ti: registered pairs of a task-irrelevant class; target: unlabeled frames; eval: labelled frames")
    p.add_argument("--class", dest="class_name", metavar="NAME", help="class folder of the frames (--as ti and --as eval)")
    p.add_argument("--stream", choices=("depth", "infrared"),
                   help="target modality (default depth, or the source's ?stream=; infrared is RealSense infrared #1)")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--every", type=_positive_int, metavar="N", help="keep every Nth frame")
    keep.add_argument("--min-change", type=_positive_float, metavar="X",
                      help="keep a frame only when it differs from the last kept one by more than X grey levels "
                           "(mean absolute difference of 32×24 grey copies of the colour frames)")
    p.add_argument("--max", type=_positive_int, metavar="N", help="stop after keeping N frames")
    p.add_argument("--seconds", type=_positive_float, metavar="S", help="stop after S seconds of stream")
    p.add_argument("--model", type=Path,
                   help="a model (.pt/.onnx) whose task classes --as ti refuses (and --as eval requires)")
    p.set_defaults(handler=cmd_collect)

    p = sub.add_parser("demo", parents=[common], help="the whole path on the built-in data, offline",
                       description="Render the synthetic RGB-D scenes, train RGB source models on two sensor domains, "
                                   "adapt them to the third domain's depth (unadapted, SHOT/DECISION, SOCKET, socket-plus), "
                                   "export the SOCKET ensemble to ONNX with a parity check, distil it into one "
                                   "student, score every model on held-out depth frames no adaptation saw, and "
                                   "stream those frames as a RealSense recording (a 16-bit video where "
                                   "pyrealsense2 cannot load) through `run`. Prints one "
                                   "table (accuracy on the adapted and on the held-out frames); writes every artifact, summary.json and a one-page summary.png into OUT. "
                                   "A re-run skips finished steps.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="a smoke run: small scenes, few epochs (under 2 minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete the run folder's earlier demo and start again")
    p.set_defaults(handler=cmd_demo)
    return parser


def unexpected(exc: Exception) -> str:
    """One line for an exception no stage turned into a SocketEdgeError: a full disk says so."""
    from socket_edge.atomic import NO_SPACE, write_error

    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        if exc.filename:
            return str(write_error(Path(exc.filename), exc))
        return f"{NO_SPACE[exc.errno]} ({exc.strerror}); free some space, then run the command again"
    loop = None
    if isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop from "):  # Path.resolve's own error
        loop = str(exc).removeprefix("Symlink loop from ").strip("'")
    elif isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        loop = exc.filename
    if loop:
        return (f"{loop} is a symbolic link loop (following it leads back to it); fix or remove the link, then run "
                "the command again")
    if isinstance(exc, OSError) and exc.filename and exc.strerror:  # permission, read-only file system, …
        return f"{exc.filename}: {exc.strerror}; check that it exists and that you may read and write it there"
    text = str(exc).strip().splitlines()
    return f"unexpected {type(exc).__name__}: {text[0] if text else repr(exc)}; run with --debug for the traceback"


def _report(exc: SocketEdgeError) -> int:
    """Print the error's line (in a torchrun job: rank 0 alone for a failure every rank meets,
    else with this rank's number) and return its exit code."""
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    if ranks > 1 and exc.everywhere:
        if _rank() == 0:
            print(f"socket-edge: error: {printable(exc)}", file=sys.stderr, flush=True)
        from socket_edge.training.distributed import barrier

        try:
            barrier()  # every rank exits after rank 0 has said why
        except RuntimeError:
            pass  # a rank has already gone
    else:
        where = f" (rank {_rank()} of {ranks})" if ranks > 1 else ""
        print(f"socket-edge: error{where}: {printable(exc)}", file=sys.stderr, flush=True)
    return exc.exit_code


def _peer_failed(exc: Exception) -> bool:
    """Whether, in a torchrun job, a collective failed under this process: another rank has
    stopped (it reported its own error) and its connections closed."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or not isinstance(exc, RuntimeError):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any("torch/distributed/" in frame.filename.replace(os.sep, "/") for frame in frames)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit meets no closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a test's capture)
        pass
    finally:
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line and a non-zero exit code for every failure; `--debug` shows the
    traceback of an unexpected one."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["socket-edge", *argv])
    try:
        return args.handler(args)
    except SocketEdgeError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        print("socket-edge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `socket-edge run … | head -1`: the reader has gone; end quietly, as Unix tools do
        _quiet_stdout()
        return 128 + signal.SIGPIPE
    except Exception as exc:
        if args.debug:
            raise
        if _peer_failed(exc):
            return 1  # the process that failed has said why; torchrun ends the job
        print(f"socket-edge: error: {printable(unexpected(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
