"""`adapt --select auto`: run the candidate adaptations one after the other, each in its own run
folder OUT.candidates/<name>.pt (a finished candidate with the same settings is not run again; an
interrupted one resumes), rank them by a label-free validator (validators.py) or, given labelled
evaluation data, by the accuracy on it, and copy the winner to OUT."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from socket_edge import atomic
from socket_edge.adapt.config import SOCKET_ONLY, AdaptConfig, base_method
from socket_edge.adapt.validators import HIGHER_IS_BETTER
from socket_edge.data.identity import changed
from socket_edge.errors import ArtifactError, UsageError
from socket_edge.models import artifact
from socket_edge.training import distributed
from socket_edge.training.run_folder import RunFolder, mark, refuse_foreign, run_folder_for

# The label-free validator that ranks the candidates by default (ties go to the lower TI hold-out KL):
# the agreement of the predictions with the centroid pseudo-labels, the one with the highest rank
# correlation with labelled accuracy in docs/benchmarks/select_auto_kl.md (runs × epochs, chosen on those same
# runs; with the candidates on the faithful terms, `im` is a close second, +0.65 to agree's +0.67, and its
# pick gained less: +0.5 / −1.2 against +2.0 / −0.5). With socket-plus's fading-λ_TI preset (select_auto.md,
# 3 seeds) agree is still first, +0.72 to im's +0.71, and the two picks gain alike: +0.7 / −0.8 against im's
# +0.6 / +1.6. Not rerun since the candidates are SOCKET itself (socket-plus became SOCKET repeated).
DEFAULT_VALIDATOR = "agree"
TIE_BREAK = "ti_kl"


def candidates(base: AdaptConfig, sources: int) -> dict[str, AdaptConfig]:
    """name → config: the base (SHOT on one source, DECISION on several), SOCKET, and SOCKET with the
    input adapter; every setting `base` has beyond its own method's preset is kept. Each is one
    adaptation (socket-plus is SOCKET repeated: run the winner again with --repeats to average it)."""
    preset = AdaptConfig.for_method(base.method)
    options = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if getattr(base, f.name) !=
               getattr(preset, f.name) and f.name not in ("method", "ti_adapter", "repeats")}
    return {
        "base": AdaptConfig.for_method(base_method(sources),  # without the options of terms it does not have
                                       **{k: v for k, v in options.items() if k not in SOCKET_ONLY}),
        "socket": AdaptConfig.for_method("socket", **options),
        "socket-adapter": AdaptConfig.for_method("socket", ti_adapter=True, **options),
    }


def candidates_folder(out: Path) -> Path:
    """Where the candidates' outputs and run folders live: OUT.candidates/ beside OUT."""
    return out.with_name(out.name + ".candidates")


def finished_result(path: Path, config: AdaptConfig, inputs: dict) -> dict | None:
    """The recorded result of a finished candidate run with these settings, else None (also where its output
    is damaged, a truncated copy: it is socket-edge's own, in its own folder, and is run again)."""
    if not path.is_file() or RunFolder(run_folder_for(path)).checkpoint.is_file():
        return None
    try:
        prov = artifact.read(path)["provenance"]
    except ArtifactError:
        return None
    if prov.get("config") != config.to_dict() or prov.get("inputs") != inputs:
        return None
    return prov["metrics"]


def recorded_identity(path: Path) -> dict | None:
    """The identities of the inputs (data/identity.py) a candidate ran with: its run folder's
    config.json while it is interrupted, its artifact's provenance once finished; None when
    neither is there (or a run of an earlier version that did not record them)."""
    run = RunFolder(run_folder_for(path))
    try:
        if run.checkpoint.is_file() and run.config.is_file():
            return json.loads(run.config.read_text())["inputs"].get("identity")
        if path.is_file():
            return artifact.read(path)["provenance"].get("inputs", {}).get("identity")
    except (ArtifactError, ValueError, KeyError, TypeError, AttributeError):  # damaged: the run says so, or runs again
        return None
    return None


def scores(result: dict) -> dict[str, float]:
    """The validators (and the accuracy, when evaluation data were given) of the kept epoch."""
    entry = result["epochs"][result["kept_epoch"]]
    return {k: entry[k] for k in (*HIGHER_IS_BETTER, "accuracy") if entry.get(k) is not None}


def rank(results: dict[str, dict], by: str) -> list[str]:
    """Candidate names, best first, by the score `by` ("accuracy" or a validator), ties broken by
    the TI hold-out KL, then by the order given (the base first)."""
    higher = True if by == "accuracy" else HIGHER_IS_BETTER[by]
    order = list(results)

    def key(name: str) -> tuple:
        s = scores(results[name])
        if by not in s:
            raise UsageError(f"candidate {name} has no {by} score (the TI hold-out scores need --ti-source/"
                             "--ti-target, the accuracy --eval-data)")
        tie = s.get(TIE_BREAK, 0.0) if by != TIE_BREAK else 0.0
        return (-s[by] if higher else s[by], tie, order.index(name))

    return sorted(results, key=key)


def run_each(configs: dict[str, AdaptConfig], folder: Path, run: Callable[[AdaptConfig, Path, bool, bool], dict],
             inputs: dict, say: Callable[[str], None] = print, what: str = "candidate") -> dict[str, dict]:
    """Run each config into folder/<name>.pt through `run(config, path, resume, overwrite)`: a finished
    run with the same settings and inputs is reused, an interrupted one resumes, one whose inputs
    changed runs again. Returns the results by name (`what` names a run in the lines said)."""
    if distributed.is_main():
        refuse_foreign(folder)
        mark(folder)
    distributed.barrier()
    results = {}
    for name, config in configs.items():
        path = folder / f"{name}.pt"
        moved = changed(recorded_identity(path), inputs["identity"])
        if moved:
            say(f"{what} {name}: {', '.join(moved)} changed since it ran (other files or contents); running it "
                f"again into {path}")
            results[name] = run(config, path, False, True)
            continue
        results[name] = finished_result(path, config, inputs)
        if results[name] is not None:
            say(f"{what} {name}: finished earlier, reused ({path})")
            continue
        resume = RunFolder(run_folder_for(path)).checkpoint.is_file()
        say(f"{what} {name}: {'resuming' if resume else 'running'} into {path}")
        results[name] = run(config, path, resume, not resume)
    return results


def select(configs: dict[str, AdaptConfig], out: Path, by: str, run: Callable[[AdaptConfig, Path, bool, bool], dict],
           inputs: dict, say: Callable[[str], None] = print) -> tuple[str, dict[str, dict]]:
    """Run (or reuse) each candidate (run_each) in OUT.candidates/, copy the winner under `by` to `out`
    atomically; returns (winner, results by name)."""
    folder = candidates_folder(out)
    results = run_each(configs, folder, run, inputs, say)
    winner = rank(results, by)[0]
    if distributed.is_main():  # under torchrun rank 0 alone writes
        atomic.write_bytes(out, [(folder / f"{winner}.pt").read_bytes()])
    return winner, results


def table(results: dict[str, dict], by: str, winner: str) -> str:
    """The candidates' scores, one line each, and why the winner won."""
    keys = ["accuracy"] if by == "accuracy" else []
    keys += [k for k in HIGHER_IS_BETTER if any(k in scores(r) for r in results.values())]
    lines = ["candidate            " + "  ".join(f"{k:>9}" for k in keys)]
    for name, result in results.items():
        s = scores(result)
        cells = "  ".join(f"{s[k]:>9.4g}" if k in s else f"{'–':>9}" for k in keys)
        lines.append(f"{'* ' if name == winner else '  '}{name:<19}" + cells)
    direction = "highest" if by == "accuracy" or HIGHER_IS_BETTER[by] else "lowest"
    what = "accuracy on --eval-data" if by == "accuracy" else f"{by} (label-free)"
    lines.append(f"kept {winner}: the {direction} {what}")
    return "\n".join(lines)
