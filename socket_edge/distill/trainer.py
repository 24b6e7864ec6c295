"""`socket-edge distill`: train one student to match an adapted ensemble's class probabilities on
the unlabeled target images (and TI target images), with the ensemble's pseudo-labels.

The teacher and the student see the same augmented view of each image (a consistent teacher):
the teacher at its own input size, the student at its own (the view resized when they differ).
Agreement (argmax student = argmax teacher on the un-augmented target images) needs no labels
and is reported every epoch; accuracy too when --eval-data is given.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from socket_edge.data.identity import identities
from socket_edge.distill.config import DistillConfig
from socket_edge.distill.inputs import DistillInputs, load_inputs
from socket_edge.distill.losses import KDLoss, PseudoLabelCE
from socket_edge.distill.student import StudentStart, start_student
from socket_edge.metrics import metrics
from socket_edge.models import artifact
from socket_edge.models.ensemble import Ensemble
from socket_edge.models.torch_utils import augment, resolve_device, seed_everything
from socket_edge.models.zoo import parameter_groups
from socket_edge.training import distributed
from socket_edge.training.batches import Batch, FrameRows
from socket_edge.training.loop import Run, Task, fit, on_device
from socket_edge.training.run_folder import RunFolder, plot_loss_terms, run_folder_for

LOSS_KEYS = ("loss", "l_kd", "l_pl")


def student_view(view: torch.Tensor, size: tuple[int, int], nearest: bool) -> torch.Tensor:
    """The teacher's augmented view at the student's input size (unchanged when they agree)."""
    if tuple(view.shape[-2:]) == tuple(size):
        return view
    if nearest:  # depth holes (0) must not blend into readings
        return F.interpolate(view, size=size, mode="nearest")
    return F.interpolate(view, size=size, mode="bilinear", align_corners=False, antialias=True)


def distill(config: DistillConfig, teacher: Path, target: Path, out: Path, *, ti_target: Path | None = None,
            eval_data: Path | None = None, classes: list[str] | None = None, ti_classes: list[str] | None = None,
            resume: bool = False, overwrite: bool = False, progress: bool = True, command: str | None = None,
            cache_dir: str | Path | None = None, workers: int | None = None) -> dict:
    """Distil the teacher ensemble into one student; write the student artifact and the run folder.
    `command`: the command line, for the provenance; `cache_dir`: where the frame cache lives;
    `workers`: DataLoader processes. Under torchrun, rank 0 alone writes."""
    started = time.time()
    out = Path(out)
    run = RunFolder(run_folder_for(out))
    if distributed.is_main():
        run.prepare(out, resume, overwrite, example="student.pt")
    device = distributed.join(resolve_device(config.device))
    distributed.barrier()  # rank 0 has prepared the run folder
    with distributed.local_main_first():
        inputs = load_inputs(Path(teacher), Path(target), config.img_size, ti_target=ti_target and Path(ti_target),
                             eval_data=eval_data and Path(eval_data), classes=classes, ti_classes=ti_classes,
                             progress=progress and distributed.is_main(), cache_dir=cache_dir)
    seed_everything(config.seed)
    start = start_student(config, inputs.teacher)
    described = {"teacher": str(teacher), "target": str(target), "ti_target": str(ti_target),
                 "eval_data": str(eval_data), "classes": classes, "ti_classes": ti_classes,
                 "identity": identities({"the teacher": teacher, "--target": target, "--ti-target": ti_target,
                                         "--eval-data": eval_data})}
    settings = {"config": config.to_dict(), "inputs": described}

    student = on_device(Ensemble(inputs.student_contract, [distributed.sync_batchnorm(start.member, device)], [1.0]), device)
    task = Distillation(config, student, start, inputs, device, started)
    summary = task.reference["summary"]
    run_config = {**settings, "student_start": start.note, "teacher_reference": summary}
    pool = FrameRows([inputs.target.teacher] + ([] if inputs.ti_target is None else [inputs.ti_target]))
    history = fit(task, data=pool, batch_size=config.batch_size, epochs=config.epochs, seed=config.seed,
                  device=device, run=Run(run, settings, resume, run_config), progress=progress, workers=workers)
    final = history[-1]
    result = {
        "student": {"arch": config.arch, "start": start.note, "size": list(inputs.student_contract.size),
                    "dropped_blocks": list(config.dropped_blocks)},
        "epochs": history, "agreement": final["agreement"], "seconds": round(time.time() - started, 1),
        "target_n": len(inputs.target.teacher), "ti_n": 0 if inputs.ti_target is None else len(inputs.ti_target),
        **summary,
    }
    if "accuracy" in final:
        result["accuracy"] = final["accuracy"]
    if not distributed.is_main():
        return result
    prov = artifact.provenance(
        command, stage="distill", seed=config.seed, config=config.to_dict(), inputs=described, metrics=result,
        teacher={"file": str(teacher), **{k: inputs.teacher_provenance.get(k) for k in ("stage", "method", "command",
                                                                                      "created", "seed")},
                 "members": [m.config.arch for m in inputs.teacher.members],
                 "zeta": [float(z) for z in inputs.teacher.zeta]},
        data=inputs.target_list.summary(), device=str(device), run_folder=str(run.root),
    )
    plot_curves(history, summary.get("teacher_accuracy"), run.curves,
                f"distill {Path(teacher).name} → {config.arch} ({start.weights} start), T {config.temperature}")
    artifact.save(student.cpu().eval(), out, "ensemble", prov)  # the last write: an output beside no checkpoint is finished
    run.checkpoint.unlink(missing_ok=True)
    return result


class Distillation(Task):
    """Distill's part of the training loop: each step shows the teacher and the student the same
    augmented view of a batch of the pool (target images, then TI target images)."""

    def __init__(self, config: DistillConfig, student: Ensemble, start: StudentStart, inputs: DistillInputs,
                 device: torch.device, started: float) -> None:
        self.config, self.model, self.start, self.inputs, self.device, self.started = \
            config, student, start, inputs, device, started
        self.teacher = inputs.teacher.to(device).eval()
        self.reference = _teacher_reference(self.teacher, inputs, device)
        self.kd_loss, self.pl_loss = KDLoss(config.temperature), PseudoLabelCE()
        groups = parameter_groups(start.member, config.lr, backbone_factor=0.1 if start.pretrained else 1.0)
        self.optimizer = torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
        self.net = distributed.parallel(student.members[0], device)  # DDP under torchrun
        ti_n = 0 if inputs.ti_target is None else len(inputs.ti_target)
        self.is_target = torch.arange(len(inputs.target.teacher) + ti_n) < len(inputs.target.teacher)

    def step(self, batch: Batch, generator: torch.Generator, done: float) -> tuple[torch.Tensor, dict]:
        config, device, contract = self.config, self.device, self.inputs.student_contract
        nearest = contract.invalid_zero
        view = augment(batch.on(device), generator, nearest=nearest, share=distributed.share())
        with torch.no_grad():
            teacher_probs = self.teacher(view).float()
        logits = self.net(self.model.input(student_view(view, tuple(contract.size), nearest)))
        terms = {"l_kd": self.kd_loss(logits, teacher_probs)}
        loss = terms["l_kd"]
        if config.lambda_pl > 0:  # a mean over the global batch's target images (none: 0)
            mask = self.is_target[batch.idx].to(device)
            share = distributed.global_sum(mask.sum().float()) / distributed.size()
            terms["l_pl"] = self.pl_loss(logits[mask], teacher_probs[mask], share.clamp_min(1e-12))
            loss = loss + config.lambda_pl * terms["l_pl"]
        return loss, terms

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        """The epoch's metrics line: losses, agreement with the teacher on the target, accuracy."""
        inputs, device = self.inputs, self.device
        pred = distributed.predict_all(self.model, inputs.target.student, device).argmax(axis=1)
        entry: dict = {"epoch": epoch, **losses,
                       "agreement": round(100.0 * float((pred == self.reference["target_pred"]).mean()), 2)}
        if inputs.eval_frames is not None:
            probs = distributed.predict_all(self.model, inputs.eval_frames.student, device)
            entry["accuracy"] = metrics(inputs.eval_labels, probs, inputs.student_contract.class_names)["accuracy"]
        entry["elapsed_s"] = round(time.time() - self.started, 1)
        return entry

    def describe(self, entry: dict) -> str:
        """One line per epoch for the log (the first says how the student started)."""
        parts = [f"epoch {entry['epoch']}/{self.config.epochs}" if entry["epoch"]
                 else f"student: {self.start.note}; before training"]
        if "loss" in entry:
            terms = ", ".join(f"{k[2:]} {entry[k]:.3f}" for k in LOSS_KEYS[1:] if k in entry)
            parts.append(f"loss {entry['loss']:.3f} ({terms})")
        parts.append(f"agreement with the teacher {entry['agreement']:.1f}%")
        if "accuracy" in entry:
            parts.append(f"accuracy {entry['accuracy']:.1f}%")
        return parts[0] + ": " + ", ".join(parts[1:])


def _teacher_reference(teacher: Ensemble, inputs: DistillInputs, device: torch.device) -> dict:
    """The teacher's predictions on the un-augmented target images (for agreement), and its
    accuracy on the evaluation data: computed once, the teacher never changes."""
    target_pred = distributed.predict_all(teacher, inputs.target.teacher, device).argmax(axis=1)
    summary: dict = {"teacher_members": len(teacher.members)}
    if inputs.eval_frames is not None:
        probs = distributed.predict_all(teacher, inputs.eval_frames.teacher, device)
        summary["teacher_accuracy"] = metrics(inputs.eval_labels, probs, teacher.contract.class_names)["accuracy"]
    return {"target_pred": target_pred, "summary": summary}


def plot_curves(history: list[dict], teacher_accuracy: float | None, out: Path, title: str) -> Path:
    """Loss terms, and agreement/accuracy per epoch (teacher's accuracy as a line), one PNG."""
    from socket_edge.plotting import figure, save_png

    fig = figure((9, 3.4))
    axes = fig.subplots(1, 2)
    plot_loss_terms(axes[0], history, LOSS_KEYS)
    ax = axes[1]
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["agreement"] for h in history], marker="o", label="agreement with the teacher (target)")
    if all("accuracy" in h for h in history):
        ax.plot(epochs, [h["accuracy"] for h in history], marker="o", label="student accuracy (eval data)")
    if teacher_accuracy is not None:
        ax.axhline(teacher_accuracy, color="grey", linestyle="--", label=f"teacher accuracy {teacher_accuracy:.1f}%")
    ax.set_ylim(0, 102)
    ax.set_xlabel("epoch (0 = the student's start)")
    ax.set_title("%")
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    return save_png(fig, out)
