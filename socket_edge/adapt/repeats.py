"""`adapt --repeats K` (not the paper's): K adaptations of the same sources with seeds SEED … SEED+K−1,
each a run of its own in OUT.repeats/seed-S.pt (select.run_each: a finished one with the same settings is
reused, an interrupted one continues), merged into one artifact at OUT whose members are the K adapted
ensembles' members, each ζ divided by K, so that its prediction is the mean of the K ensembles'.

Why: on small targets one adaptation's accuracy moves by 4–21 points from seed to seed, and SOCKET's
adaptations differ from one another far more than SHOT's, so their mean gains far more (socket-plus's
preset, K = 3: docs/benchmarks/faithful_socket.md). The price: K× the adaptation time, and K× the
members, so K× the inference, in the one exported graph."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch

from socket_edge.adapt.config import AdaptConfig
from socket_edge.adapt.select import run_each
from socket_edge.data.folders import class_folders, contract_labels
from socket_edge.data.loading import load_frames
from socket_edge.metrics import metrics
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.torch_utils import predict
from socket_edge.training import distributed

EVAL_BATCH = 64


def repeats_folder(out: Path) -> Path:
    """Where the repeats' outputs and run folders live: OUT.repeats/ beside OUT."""
    out = Path(out)
    return out.with_name(out.name + ".repeats")


def repeat_configs(config: AdaptConfig) -> dict[str, AdaptConfig]:
    """name → config of each repeat: the same settings, one adaptation each, seeds SEED … SEED+K−1."""
    return {f"seed-{config.seed + i}": dataclasses.replace(config, seed=config.seed + i, repeats=1)
            for i in range(config.repeats)}


def merge(ensembles: list[Ensemble]) -> Ensemble:
    """One ensemble of every member of `ensembles`, each ζ divided by their number: F = mean of their F."""
    zeta = torch.cat([e.zeta for e in ensembles]) / len(ensembles)
    return Ensemble(ensembles[0].contract, [m for e in ensembles for m in e.members], zeta)


def eval_accuracy(model: Ensemble, eval_data: Path, classes: list[str] | None) -> float:
    """The merged model's accuracy (%) on labelled class folders, on the CPU."""
    images = class_folders(eval_data, "evaluation data", classes)
    labels = contract_labels(images, model.contract, f"evaluation data {images.root}")
    frames = load_frames(images.files, model.contract, progress=False)
    probs = predict(model, frames, torch.device("cpu"), EVAL_BATCH)
    return metrics(labels, probs, model.contract.class_names)["accuracy"]


def adapt_repeated(config: AdaptConfig, out: Path, run: Callable[[AdaptConfig, Path, bool, bool], dict],
                   inputs: dict, *, eval_data: Path | None = None, classes: list[str] | None = None,
                   command: str | None = None, say: Callable[[str], None] = print) -> dict:
    """Run (or reuse) the K repeats of `config` through `run(config, path, resume, overwrite)`, write the
    merged artifact to `out` (atomically, rank 0 alone) and return its result: the merged ζ and, with
    `eval_data`, its accuracy; each repeat's result under "repeats" (their epochs, their accuracies)."""
    started = time.time()
    folder = repeats_folder(out)
    configs = repeat_configs(config)
    results = run_each(configs, folder, run, inputs, say, what="repeat")
    result = {"method": config.method, "repeats": [{"seed": c.seed, **results[name]} for name, c in configs.items()]}
    distributed.barrier()  # rank 0 has written the last repeat's model
    if not distributed.is_main():  # under torchrun rank 0 alone merges and writes
        return result
    paths = [folder / f"{name}.pt" for name in configs]
    loaded = [artifact.load(path) for path in paths]  # (ensemble, the artifact's dict) of each repeat
    merged = merge([ensemble for ensemble, _ in loaded]).eval()
    first = result["repeats"][0]
    result.update(zeta=[float(z) for z in merged.zeta], target_n=first["target_n"])
    if eval_data is not None:
        result.update(accuracy=round(eval_accuracy(merged, Path(eval_data), classes), 2), eval=first["eval"],
                      unadapted_accuracy=first["epochs"][0]["accuracy"])
    result["seconds"] = round(time.time() - started, 1)
    recorded = loaded[0][1]["provenance"]
    prov = artifact.provenance(
        command, stage="adapt", method=config.method, seed=config.seed, config=config.to_dict(), inputs=inputs,
        sources=recorded.get("sources"), data=recorded.get("data"), ti=recorded.get("ti"),
        metrics={k: v for k, v in result.items() if k != "repeats"},
        repeats=[{"seed": r["seed"], "accuracy": r.get("accuracy"), "zeta": r["zeta"], "kept_epoch": r["kept_epoch"],
                  "output": str(path)} for r, path in zip(result["repeats"], paths)],
        device=recorded.get("device"), run_folder=str(folder))
    artifact.save(merged, out, "ensemble", prov)
    return result
