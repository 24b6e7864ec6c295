"""Everything distillation reads, loaded and checked before anything is written: the teacher
(an adapted ensemble), the unlabeled target images, optional TI target images and evaluation data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socket_edge.contract import InputContract
from socket_edge.data.folders import ImageList, class_folders, contract_labels, unlabeled_images
from socket_edge.data.images import sniff_modality
from socket_edge.data.cache import cached_frames
from socket_edge.data.preprocess import check_class_names
from socket_edge.errors import ArtifactError, ContractError, DataError
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble

_DESCRIBE = {"rgb": "a colour (rgb)", "depth": "a 16-bit single-channel (depth)", "ir": "an 8-bit single-channel"}


@dataclass
class Frames:
    """The same images prepared for the teacher's and for the student's input size
    (one array when the sizes agree): N×C×H×W in the contract's raw dtype, memory-mapped from the
    frame cache."""

    teacher: np.ndarray
    student: np.ndarray


@dataclass
class DistillInputs:
    """Loaded, checked inputs."""

    teacher: Ensemble
    teacher_provenance: dict
    student_contract: InputContract
    target: Frames
    target_list: ImageList
    ti_target: np.ndarray | None   # teacher-size frames (training only)
    ti_list: ImageList | None
    eval_frames: Frames | None
    eval_labels: np.ndarray | None


def load_teacher(path: Path) -> tuple[Ensemble, dict]:
    """An adapted ensemble artifact (`socket-edge adapt --out`), in eval mode, and its dict."""
    model, data = artifact.load(path)
    stage = data["provenance"].get("stage")
    if data["kind"] != "ensemble" or stage != "adapt":
        what = "a source model (train-source)" if data["kind"] == "source" else f"a {stage or data['kind']} model"
        raise ArtifactError(
            f"{path} is {what}, not an adapted ensemble; distill takes the output of `socket-edge adapt` "
            "(its contract names the target modality)"
        )
    return model, data


def check_modality(files: tuple[Path, ...], contract: InputContract, what: str) -> None:
    """Refuse images of another modality than the teacher's contract (judged from the first file)."""
    seen = sniff_modality(files[0])
    expected = contract.modality
    if (seen == "rgb") != (expected == "rgb") or (expected == "depth" and seen != "depth"):
        raise ContractError(
            f"the teacher was adapted to {expected} but {what} {files[0]} is {_DESCRIBE[seen]} image; "
            f"give {expected} images of the target"
        )


def _frames(files: tuple[Path, ...], teacher: InputContract, student: InputContract, desc: str,
            progress: bool, cache_dir: str | Path | None) -> Frames:
    first = cached_frames(files, teacher, cache_dir=cache_dir, desc=desc, progress=progress)
    if student.size == teacher.size:
        return Frames(first, first)
    return Frames(first, cached_frames(files, student, cache_dir=cache_dir, desc=f"{desc} ({student.size[0]} px)",
                                       progress=progress))


def load_inputs(teacher_path: Path, target: Path, img_size: int | None, *, ti_target: Path | None = None,
                eval_data: Path | None = None, classes: list[str] | None = None, ti_classes: list[str] | None = None,
                progress: bool = True, cache_dir: str | Path | None = None) -> DistillInputs:
    """Load and check everything distillation reads (fails before anything is written); the frames
    come from the frame cache in `cache_dir`."""
    teacher, data = load_teacher(teacher_path)
    contract = teacher.contract
    student_contract = contract if img_size is None else contract.replace(size=[img_size, img_size])
    target_list = unlabeled_images(target, "target") if not classes else class_folders(target, "target", classes)
    if target_list.class_names:
        check_class_names(contract.class_names, target_list.class_names,
                          f"target folder {target} (pick task classes with --classes)")
    check_modality(target_list.files, contract, "target image")
    ti_list = ti_frames = None
    if ti_target is not None:
        ti_list = unlabeled_images(ti_target, "TI target") if not ti_classes else \
            class_folders(ti_target, "TI target", ti_classes)
        check_modality(ti_list.files, contract, "TI target image")
    eval_list = None
    if eval_data is not None:
        same = Path(eval_data).resolve() == Path(target).resolve() and bool(target_list.class_names)
        eval_list = target_list if same else class_folders(eval_data, "evaluation data", classes)
        check_modality(eval_list.files, contract, "evaluation image")
    if len(target_list) < 2:
        raise DataError(f"target folder {target} has {len(target_list)} image; distillation needs a batch of several")

    frames = _frames(target_list.files, contract, student_contract, "target", progress, cache_dir)
    if ti_list is not None:
        ti_frames = cached_frames(ti_list.files, contract, cache_dir=cache_dir, desc="TI target", progress=progress)
    eval_frames = eval_labels = None
    if eval_list is not None:
        eval_labels = contract_labels(eval_list, contract, f"evaluation data {eval_data}")
        eval_frames = frames if eval_list is target_list else \
            _frames(eval_list.files, contract, student_contract, "eval", progress, cache_dir)
    return DistillInputs(teacher, data["provenance"], student_contract, frames, target_list, ti_frames, ti_list,
                         eval_frames, eval_labels)
