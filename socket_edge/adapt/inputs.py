"""Everything adaptation reads, loaded and checked before any training starts: the source
artifacts, the unlabeled target images, the TI pairs and optional evaluation data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socket_edge.adapt.config import AdaptConfig
from socket_edge.adapt.validators import holdout
from socket_edge.contract import InputContract
from socket_edge.data.folders import (ImageList, check_ti_disjoint, class_folders, contract_labels, ti_pairs,
                                      unlabeled_images)
from socket_edge.data.cache import cached_frames
from socket_edge.data.loading import intensity_dtype
from socket_edge.data.preprocess import check_class_names
from socket_edge.errors import ContractError, DataError, UsageError
from socket_edge.models import artifact
from socket_edge.models.zoo import SourceModel


@dataclass
class Sources:
    """The source models as trained, and the contract they share."""

    paths: list[Path]
    members: list[SourceModel]
    contract: InputContract
    provenance: list[dict]


@dataclass
class AdaptInputs:
    """Loaded, checked inputs: raw frames N×C×H×W in the contracts' raw dtypes, memory-mapped from
    the frame cache."""

    sources: Sources
    target_contract: InputContract
    target: np.ndarray
    target_list: ImageList
    ti_source: np.ndarray | None
    ti_target: np.ndarray | None
    ti_summary: dict | None
    eval_frames: np.ndarray | None
    eval_labels: np.ndarray | None
    held_ti_source: np.ndarray | None = None  # the TI pairs never trained on (validators.holdout)
    held_ti_target: np.ndarray | None = None
    eval_adapted: int = 0  # evaluation frames that are also target frames (all: transductive; none: inductive)


def load_sources(paths: list[Path], img_size: int | None = None) -> Sources:
    """Read the source artifacts; they must agree on classes (same order), modality and input."""
    if not paths:
        raise UsageError("give at least one --source model")
    members, provs, first = [], [], None
    for path in paths:
        data = artifact.read(path)
        if len(data["members"]) != 1:
            raise UsageError(f"{path} is an ensemble of {len(data['members'])} models; pass its source models instead")
        contract = InputContract.from_dict(data["contract"])
        if first is None:
            first = (path, contract)
        else:
            _check_same(first, (path, contract))
        members += artifact.build_members(data, path)
        provs.append({"file": str(path), **{k: data["provenance"].get(k) for k in ("stage", "command", "created", "seed")}})
    contract = first[1]
    if img_size is not None:
        contract = contract.replace(size=[img_size, img_size])
    return Sources(list(paths), members, contract, provs)


def _check_same(a: tuple[Path, InputContract], b: tuple[Path, InputContract]) -> None:
    (pa, ca), (pb, cb) = a, b
    if ca.class_names != cb.class_names:
        raise ContractError(
            f"{pb} has classes {', '.join(cb.class_names)} but {pa} has {', '.join(ca.class_names)}; "
            "all sources must share the same class names in the same order"
        )
    for field in ("modality", "size", "mean", "std", "channels"):
        if getattr(ca, field) != getattr(cb, field):
            raise ContractError(
                f"{pb} expects {field} {getattr(cb, field)} but {pa} expects {getattr(ca, field)}; "
                "sources of one ensemble must share their input contract"
            )


def load_inputs(config: AdaptConfig, sources: Sources, target: Path, ti_source: Path | None, ti_target: Path | None,
                eval_data: Path | None, classes: list[str] | None = None, ti_classes: list[str] | None = None,
                progress: bool = True, cache_dir: str | Path | None = None) -> AdaptInputs:
    """Load and check everything adaptation reads (fails before anything is written); the frames
    come from the frame cache in `cache_dir`."""
    task = sources.contract.class_names
    if sources.contract.modality == config.modality:
        raise UsageError(
            f"the sources are {config.modality} models and the target modality is {config.modality}: "
            "SOCKET transfers across modalities; pick the target's --modality"
        )
    if config.uses_ti and (ti_source is None or ti_target is None):
        raise UsageError("--method socket needs TI pairs: --ti-source DIR (source modality) and --ti-target DIR")
    if (ti_source is None) != (ti_target is None):
        given, missing = ("--ti-source", "--ti-target") if ti_target is None else ("--ti-target", "--ti-source")
        raise UsageError(f"{given} without {missing}: TI pairs need both roots")

    target_list = unlabeled_images(target, "target") if not classes else class_folders(target, "target", classes)
    if target_list.class_names:
        check_class_names(task, target_list.class_names, f"target folder {target} (pick task classes with --classes)")
    contract = sources.contract.retarget(
        config.modality, depth_scale=config.depth_scale, depth_range=config.depth_range,
        raw_dtype=intensity_dtype(target_list.files[0], config.modality),
    )
    ti_src = ti_tgt = ti_summary = held_src = held_tgt = None
    if ti_source is not None:  # trained on by SOCKET; with --ti-holdout a fixed share held out for the validators
        pairs = ti_pairs(ti_source, ti_target, ti_classes)
        check_ti_disjoint(pairs, task)
        keys = [str(f.relative_to(pairs.source.root).with_suffix("")) for f in pairs.source.files]
        held = holdout(keys, config.ti_holdout) if config.ti_holdout > 0 else [False] * len(keys)
        ti_frames = {}
        for side, files, side_contract in (("source", pairs.source.files, sources.contract),
                                           ("target", pairs.target.files, contract)):
            for name, keep in (("train", False), ("held", True)):
                chosen = [f for f, h in zip(files, held) if h == keep]
                needed = keep or config.uses_ti
                ti_frames[side, name] = cached_frames(chosen, side_contract, cache_dir=cache_dir, progress=progress,
                                                   desc=f"TI {side}" + (" (held out)" if keep else "")) \
                    if needed and chosen else None
        ti_src, ti_tgt = ti_frames["source", "train"], ti_frames["target", "train"]
        held_src, held_tgt = ti_frames["source", "held"], ti_frames["target", "held"]
        ti_summary = {"source": pairs.source.summary(), "target": str(pairs.target.root), "pairs": len(pairs),
                      "held_out": sum(held)}
    frames = cached_frames(target_list.files, contract, cache_dir=cache_dir, desc="target", progress=progress)
    eval_frames = eval_labels = None
    eval_adapted = 0
    if eval_data is not None:
        same = Path(eval_data).resolve() == Path(target).resolve()
        images = target_list if same and target_list.class_names else class_folders(eval_data, "evaluation data", classes)
        eval_labels = contract_labels(images, contract, f"evaluation data {eval_data}")
        eval_frames = frames if images is target_list else \
            cached_frames(images.files, contract, cache_dir=cache_dir, desc="eval", progress=progress)
        adapted = {f.resolve() for f in target_list.files}
        eval_adapted = sum(f.resolve() in adapted for f in images.files)
    if len(frames) < 2:
        raise DataError(f"target folder {target} has {len(frames)} image; adaptation needs a batch of several")
    return AdaptInputs(sources, contract, frames, target_list, ti_src, ti_tgt, ti_summary, eval_frames, eval_labels,
                       held_src, held_tgt, eval_adapted)
