"""The `socket-edge` command. Each subcommand imports its stage only when it runs, so
`socket-edge --help` and the runtime commands work without torch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from socket_edge import __version__
from socket_edge.contract import DEFAULT_DEPTH_SCALE, MODALITIES
from socket_edge.errors import SocketEdgeError


current_argv: list[str] | None = None  # the arguments of the running command, for provenance


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated class names")
    return names


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX in metres, e.g. 0.2:8, got {text!r}") from None
    if not hi > lo >= 0:
        raise argparse.ArgumentTypeError(f"need 0 <= MIN < MAX, got {text!r}")
    return lo, hi


def cmd_synth(args: argparse.Namespace) -> int:
    from socket_edge.data import synth

    summary = synth.generate(args.out, per_class=args.per_class, size=args.size, seed=args.seed,
                             domains=args.domains, progress=not args.quiet)
    total = sum(summary["counts"].values()) if "counts" in summary else None
    print(f"wrote {args.out}" + (f": {total} scenes" if total is not None else "")
          + f" in {summary.get('seconds', 0):.1f} s (task classes: {', '.join(synth.TASK_CLASSES)}; "
          f"TI classes: {', '.join(synth.TI_CLASSES)})")
    return 0


def cmd_train_source(args: argparse.Namespace) -> int:
    from socket_edge.models.train import TrainConfig, train_source

    config = TrainConfig(
        arch=args.arch, weights=args.weights, head=args.head, modality=args.modality, img_size=args.img_size,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, val_fraction=args.val_fraction,
        depth_scale=args.depth_scale, depth_range=args.depth_range, seed=args.seed, device=args.device,
    )
    result = train_source(args.data, args.out, config, progress=not args.quiet, classes=args.classes)
    val = f", held-out accuracy {result['val_accuracy']:.1f}% (n={result['val_n']})" if "val_accuracy" in result else ""
    print(f"wrote {args.out}: trained on {result['train_n']} images in {result['seconds']:.0f} s{val}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from socket_edge.evaluation import evaluate, plot_confusion

    result = evaluate(args.model, args.data, modality=args.modality, depth_scale=args.depth_scale, batch_size=args.batch_size,
                      device=args.device, progress=not args.quiet and not args.json, classes=args.classes)
    if args.plot:
        plot_confusion(result, args.plot, title=f"{Path(args.model).name} on {args.data}: "
                                                f"{result['accuracy']:.1f}% (n={result['n']})")
    if args.json:
        print(json.dumps(result))
        return 0
    how = result["modality"] if result["modality"] == result["trained_on"] else \
        f"{result['modality']}, unadapted from {result['trained_on']}"
    print(f"{args.model} on {args.data} ({how}): accuracy {result['accuracy']:.2f}% (n={result['n']})")
    width = max(len(name) for name in result["per_class"])
    for name, acc in result["per_class"].items():
        print(f"  {name:<{width}}  {acc:6.2f}%")
    if args.plot:
        print(f"confusion matrix: {args.plot}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from socket_edge.inspection import describe, summarize

    summary = summarize(args.model)
    print(json.dumps(summary, indent=2) if args.json else describe(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="socket-edge",
        description="RGB-trained classifiers to depth and infrared cameras (SOCKET, ECCV 2022).",
    )
    parser.add_argument("--version", action="version", version=f"socket-edge {__version__}")
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
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--lr", type=_positive_float, default=1e-2, help="head learning rate; backbone gets ×0.1")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out fraction per class (default 0.1)")
    p.add_argument("--depth-scale", type=_positive_float, default=DEFAULT_DEPTH_SCALE,
                   help="metres per depth unit (default 0.001 = mm)")
    p.add_argument("--depth-range", type=_range, default=(0.0, 10.0), help="valid depth MIN:MAX in metres")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(handler=cmd_train_source)

    p = sub.add_parser("eval", parents=[common], help="accuracy of a model on labelled images",
                       description="Accuracy, per-class accuracy and confusion matrix on ROOT/<class>/<image>. "
                                   "The modality comes from the model's input contract.")
    p.add_argument("model", type=Path, help="model artifact (.pt)")
    p.add_argument("--data", type=Path, required=True, help="class folders ROOT/<class>/<image>")
    p.add_argument("--classes", type=_names, help="use only these class folders (comma-separated)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", type=Path, help="write the confusion matrix as a PNG")
    p.add_argument("--modality", choices=MODALITIES, default=None,
                   help="feed the model this modality as it is (the unadapted cross-modal baseline); "
                        "default: the model's own")
    p.add_argument("--depth-scale", type=_positive_float, default=None,
                   help="metres per unit of these depth files, if not the model's unit (default 0.001)")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("inspect", help="what a model file is and what input it expects",
                       description="Print a model's input contract, members, ζ and provenance.")
    p.add_argument("model", type=Path)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line and a non-zero exit code for every user-facing failure."""
    global current_argv
    current_argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(current_argv)
    try:
        return args.handler(args)
    except SocketEdgeError as exc:
        print(f"socket-edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("socket-edge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
