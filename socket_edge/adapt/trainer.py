"""`socket-edge adapt`: the training loop of SOCKET and its baselines (Algorithm 1).

none         the unadapted ensemble, equal ζ
shot         L_ma = L_ent − L_div + λ_pl·L_pl, ζ equal
decision     L_ma with learned ζ
socket       L_ma + λ_TI·L_TI + λ_d·L_d with learned ζ
socket-plus  socket as set by its preset (config.PRESETS): three adaptations averaged (--repeats 3, repeats.py)
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from socket_edge.adapt import repeats, term_balance
from socket_edge.adapt.bn_alignment import BNStatsLoss, group_by_layout
from socket_edge.adapt.config import AdaptConfig
from socket_edge.adapt.curves import plot_curves
from socket_edge.adapt.information_max import InformationMaximization
from socket_edge.adapt.inputs import AdaptInputs, Sources, load_inputs, load_sources
from socket_edge.adapt.model import AdaptiveEnsemble, running_stats
from socket_edge.adapt.neighbourhood import NeighbourhoodConsistencyLoss, ensemble_features
from socket_edge.adapt.pseudo_labels import PseudoLabelLoss, cluster_pseudo_labels
from socket_edge.adapt.selection import better, target_scores
from socket_edge.adapt.ti_alignment import TIAlignmentLoss
from socket_edge.adapt.validators import snd, ti_consistency
from socket_edge.data.identity import identities
from socket_edge.errors import UsageError
from socket_edge.metrics import metrics
from socket_edge.models import artifact
from socket_edge.models.input_module import InputNormalizer
from socket_edge.models.torch_utils import augment, autocast, resolve_device, seed_everything, to_device
from socket_edge.models.zoo import parameter_groups
from socket_edge.progress import bar
from socket_edge.training import distributed
from socket_edge.training.batches import Batch, FrameRows
from socket_edge.training.run_folder import RunFolder, run_folder_for
from socket_edge.training.loop import Run, Task, fit, on_device

SCAN_BATCH = 128
SND_ROWS = 2000  # SND reads an N×N similarity matrix: a fixed subsample of larger target sets


@torch.no_grad()
def scan(model: AdaptiveEnsemble, frames: np.ndarray, device: torch.device,
         progress: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Eval-mode pass over frames: (features per member, ensemble probabilities), on the CPU.
    Under torchrun each rank scans its shard and every rank gets all rows."""
    model.eval()
    feats: list[list[torch.Tensor]] = [[] for _ in model.members]
    probs = []
    own = distributed.shard(len(frames))
    for start in bar(range(own.start, own.stop, SCAN_BATCH), desc="scan", enabled=progress, leave=False):
        raw = to_device(frames[start:min(start + SCAN_BATCH, own.stop)], device)
        with autocast(device):
            f, p, _ = model(raw)
        for k, fk in enumerate(f):
            feats[k].append(fk.float().cpu())
        probs.append(model.mix(p).float().cpu())
    widths = [m.classifier.in_features for m in model.members]
    local_feats = [torch.cat(f) if f else torch.zeros(0, w) for f, w in zip(feats, widths)]
    local_probs = torch.cat(probs) if probs else torch.zeros(0, len(model.contract.class_names))
    n = len(frames)
    return [distributed.gather_shards(f, n) for f in local_feats], distributed.gather_shards(local_probs, n)


@torch.no_grad()
def source_ti_features(inputs: AdaptInputs, device: torch.device) -> list[torch.Tensor]:
    """ψ_k: each ORIGINAL source encoder's features of the source-modality TI images, with the
    source's own input normalisation, computed once."""
    normalise = InputNormalizer(inputs.sources.contract).to(device)
    out = []
    for member in inputs.sources.members:
        member = member.to(device).eval()
        feats = []
        for start in range(0, len(inputs.ti_source), SCAN_BATCH):
            raw = to_device(inputs.ti_source[start:start + SCAN_BATCH], device)
            with autocast(device):
                feats.append(member.encoder(normalise(raw)).float())
        out.append(torch.cat(feats))
        member.cpu()
    return out


def described_inputs(sources: list[Path], target: Path, ti_source: Path | None, ti_target: Path | None,
                     eval_data: Path | None, classes: list[str] | None, ti_classes: list[str] | None) -> dict:
    """The inputs as the run's settings and provenance record them: their paths and, under
    "identity", their content (data/identity.py), so a resumed or reused run notices a change."""
    return {"sources": [str(p) for p in sources], "target": str(target), "ti_source": str(ti_source),
            "ti_target": str(ti_target), "eval_data": str(eval_data), "classes": classes, "ti_classes": ti_classes,
            "identity": identities({"--source": list(sources), "--target": target, "--ti-source": ti_source,
                                    "--ti-target": ti_target, "--eval-data": eval_data})}


@torch.no_grad()
def source_probabilities(sources: Sources, frames: np.ndarray, device: torch.device) -> list[torch.Tensor]:
    """Each ORIGINAL source model's class probabilities on source-modality frames (on the CPU), with
    the sources' own input normalisation: what the TI hold-out consistency compares against."""
    normalise = InputNormalizer(sources.contract).to(device)
    out = []
    for member in sources.members:
        member = member.to(device).eval()
        probs = []
        for start in range(0, len(frames), SCAN_BATCH):
            raw = to_device(frames[start:start + SCAN_BATCH], device)
            with autocast(device):
                probs.append(torch.softmax(member(normalise(raw)).float(), dim=1).cpu())
        out.append(torch.cat(probs))
        member.cpu()
    return out


def _rows(values: torch.Tensor, limit: int) -> torch.Tensor:
    """At most `limit` rows, a fixed evenly spaced subsample where there are more."""
    if len(values) <= limit:
        return values
    return values[torch.linspace(0, len(values) - 1, limit).long()]


def adapt(config: AdaptConfig, sources: list[Path], target: Path, out: Path, *, ti_source: Path | None = None,
          ti_target: Path | None = None, eval_data: Path | None = None, classes: list[str] | None = None,
          ti_classes: list[str] | None = None, resume: bool = False, overwrite: bool = False,
          progress: bool = True, command: str | None = None, cache_dir: str | Path | None = None,
          workers: int | None = None) -> dict:
    """Adapt the sources to the target modality; write the ensemble artifact and the run folder.
    `command`: the command line, for the provenance; `cache_dir`: where the frame cache lives;
    `workers`: DataLoader processes. Under torchrun, rank 0 alone writes. With config.repeats K > 1:
    K such runs in OUT.repeats/, merged into one artifact (repeats.py)."""
    started = time.time()
    out = Path(out)
    if config.repeats > 1:
        return _adapt_repeated(config, sources, target, out, ti_source=ti_source, ti_target=ti_target,
                               eval_data=eval_data, classes=classes, ti_classes=ti_classes, overwrite=overwrite,
                               progress=progress, command=command, cache_dir=cache_dir, workers=workers)
    run = RunFolder(run_folder_for(out))
    if distributed.is_main():
        run.prepare(out, resume, overwrite, example="adapted.pt")
    if distributed.size() > 1 and config.lambda_nc > 0:
        raise UsageError("--lambda-nc is not available under torchrun yet (its neighbour banks are per process); "
                         "run it in one process")
    device = distributed.join(resolve_device(config.device))
    distributed.barrier()  # rank 0 has prepared the run folder
    src = load_sources([Path(p) for p in sources], config.img_size)
    with distributed.local_main_first():
        inputs = load_inputs(config, src, Path(target), ti_source and Path(ti_source), ti_target and Path(ti_target),
                             eval_data and Path(eval_data), classes, ti_classes,
                             progress and distributed.is_main(), cache_dir)
    described = described_inputs(sources, target, ti_source, ti_target, eval_data, classes, ti_classes)
    settings = {"config": config.to_dict(), "inputs": described}

    seed_everything(config.seed)
    members = [distributed.sync_batchnorm(copy.deepcopy(m), device) for m in src.members]
    model = AdaptiveEnsemble(inputs.target_contract, members, config.learns_zeta, config.zeta_param, config.ti_bn,
                             adapter=config.ti_adapter, bn_scope=config.bn_scope, dropout=config.encoder_dropout)
    task = Adaptation(config, on_device(model, device), src, inputs, device, started)
    task.progress = progress and distributed.is_main()
    n = len(inputs.target)
    history = fit(task, data=FrameRows([inputs.target]), batch_size=config.batch_size, epochs=task.epochs,
                  seed=config.seed, device=device, run=Run(run, settings, resume), progress=progress, workers=workers)
    best, kept = task.best, task.kept
    if best["state"] is not None:
        kept.load_state_dict(best["state"])
    ensemble = kept.to_ensemble().cpu().eval()
    final = history[best["epoch"]]
    result = {
        "method": config.method, "epochs": history, "kept_epoch": best["epoch"],
        "zeta": [float(z) for z in ensemble.zeta], "seconds": round(time.time() - started, 1), "target_n": n,
    }
    if "accuracy" in final:
        result["accuracy"] = final["accuracy"]
        result["eval"] = {"n": len(inputs.eval_labels), "adapted_on": inputs.eval_adapted}
    prov = artifact.provenance(
        command, stage="adapt", method=config.method, seed=config.seed, config=config.to_dict(), inputs=described,
        sources=src.provenance, data=inputs.target_list.summary(), ti=inputs.ti_summary, metrics=result,
        device=str(device), run_folder=str(run.root),
    )
    if not distributed.is_main():
        return result
    plot_curves(history, run.curves, f"{config.method}: {', '.join(Path(p).name for p in sources)} → "
                                     f"{config.modality} ({Path(target).name})")
    artifact.save(ensemble, out, "ensemble", prov)  # the last write: an output beside no checkpoint is finished
    run.checkpoint.unlink(missing_ok=True)
    return result


def _adapt_repeated(config: AdaptConfig, sources: list[Path], target: Path, out: Path, *, overwrite: bool,
                    progress: bool, **given) -> dict:
    """adapt's K repeats (repeats.adapt_repeated); each repeat continues or is reused by itself, so a
    resumed command needs nothing more than the same command."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out}/adapted.pt")
    if out.is_file() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it (finished repeats are reused), or choose "
                         "another --out")
    keys = ("ti_source", "ti_target", "eval_data", "classes", "ti_classes")
    inputs = described_inputs(sources, target, *(given[k] for k in keys))

    def one(repeat: AdaptConfig, path: Path, resume: bool, fresh: bool) -> dict:
        return adapt(repeat, sources, target, path, resume=resume, overwrite=fresh, progress=progress, **given)

    say = print if distributed.is_main() else (lambda line: None)  # as --select auto's lines, also under -q
    return repeats.adapt_repeated(config, out, one, inputs, eval_data=given["eval_data"], classes=given["classes"],
                                  command=given["command"], say=say)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class Adaptation(Task):
    progress = False  # progress bars on the scans of the target set
    """Adapt's part of the training loop. Each epoch starts with the scan of the target set (its
    pseudo-labels and neighbour banks); each step's loss, from the config, is L_ent − L_div,
    λ_pl·L_pl, λ_d·L_d, λ_TI·L_TI and λ_nc·L_nc (the last three only where the config asks for
    them); a mean teacher follows each step; the kept epoch follows the config's rule."""

    def __init__(self, config: AdaptConfig, model: AdaptiveEnsemble, src: Sources, inputs: AdaptInputs,
                 device: torch.device, started: float) -> None:
        self.config, self.model, self.inputs, self.device, self.started = config, model, inputs, device, started
        self.epochs = 0 if config.method == "none" else config.epochs
        self.nan_hint = "lower --lr or the loss weights"
        self.teacher = model.teacher() if config.ema > 0 else None
        self.kept = self.teacher or model  # the model that is scanned, evaluated and written
        self.im, self.pl = InformationMaximization(), PseudoLabelLoss()
        self.ti = TIAlignmentLoss(config.ti_distance)
        self.nc = NeighbourhoodConsistencyLoss(config.neighbours)
        self.bn = BNStatsLoss(group_by_layout([m.encoder for m in model.members]), config.bn_reduction,
                              config.bn_layers, config.bn_distance)
        self.source_stats = [[(m.to(device), v.to(device)) for m, v in running_stats(s, config.bn_scope)]
                             for s in src.members]
        self.source_encoders = None
        self.psi = None
        if config.uses_ti and config.ti_augment:
            self.source_encoders = [copy.deepcopy(m.encoder).to(device).eval() for m in src.members]
            self.source_input = InputNormalizer(inputs.sources.contract).to(device)
        elif config.uses_ti:
            self.psi = source_ti_features(inputs, device)
        groups = [g for m in model.members for g in parameter_groups(m, config.lr)]
        if config.learns_zeta:
            groups.append({"params": [model.w], "lr": config.lr_zeta, "lr0": config.lr_zeta, "weight_decay": 0.0})
        if model.adapters is not None:  # no weight decay: it would pull the mix towards 0, not the identity
            groups.append({"params": list(model.adapters.parameters()), "lr": config.lr, "lr0": config.lr,
                           "weight_decay": 0.0})
        self.held_ti_probs = source_probabilities(inputs.sources, inputs.held_ti_source, device) \
            if inputs.held_ti_source is not None else None
        self.optimizer = torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
        self.net = distributed.parallel(model, device)  # DDP under torchrun: the gradients averaged over the ranks
        self.labels = self.bank_feats = self.bank_probs = None
        self.best: dict | None = None
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.grad_norms: dict[str, float] | None = None  # measured on the first step of each epoch
        self.last_scan: tuple | None = None  # the last evaluation's scan, reused by the next epoch's start

    def start_epoch(self, epoch: int) -> None:
        """Pseudo-labels and the neighbour banks from the eval-mode scan of the target set; the
        epoch's first step measures the term balance."""
        self.grad_norms = None
        feats, probs, labels = self.last_scan or _scan_target(self.kept, self.config, self.inputs, self.device,
                                                              self.progress)
        self.labels = labels.to(self.device) if self.config.lambda_pl > 0 else None
        if self.config.lambda_nc > 0:
            self.bank_feats = ensemble_features(feats, self.kept.zeta().detach().cpu()).to(self.device)
            self.bank_probs = probs.float().to(self.device)

    def step(self, batch: Batch, generator: torch.Generator, done: float) -> tuple[torch.Tensor, dict]:
        """The loss of this rank's share of a target batch, and its terms (under the loop's autocast):
        L_ent, L_pl and L_TI are means over the share; L_div and L_d are of the global batch."""
        config, model, device = self.config, self.model, self.device
        idx = batch.idx
        raw = augment(batch.on(device), generator, nearest=self.inputs.target_contract.invalid_zero,
                      share=distributed.share())
        ti, psi = self._ti_batch(batch.total, generator) if config.uses_ti else (None, None)
        terms = {}
        with model.recording_bn_stats() if config.uses_bn_stats else nullcontext() as batch_stats:
            feats, probs_k, ti_feats = self.net(raw, ti)
        zeta = model.zeta()
        mixed = model.mix(probs_k)
        loss, terms["l_ent"], terms["l_div"] = self.im(mixed, distributed.global_sum(mixed.sum(dim=0)) / batch.total)
        weighted = {"im": loss}
        if self.labels is not None:
            terms["l_pl"] = self.pl(mixed, self.labels[idx.to(device)])
            weighted["pl"] = config.lambda_pl * terms["l_pl"]
        if config.lambda_nc > 0:
            batch_feats = ensemble_features([f.detach() for f in feats], zeta.detach())
            alpha = (1 + 10 * done) ** -1.0
            terms["l_nc"] = self.nc(mixed, batch_feats, self.bank_feats, self.bank_probs, idx.to(device), alpha)
            weighted["nc"] = config.lambda_nc * terms["l_nc"]
        idle = 0.0
        if done < config.ti_warmup and (config.uses_ti or config.uses_bn_stats):  # idle with both λ at 0
            # --ti-warmup: the target's terms are recorded, not trained; at weight 0 in the loss, so that every
            # parameter gets its gradient (0 where L_TI and L_d do not reach, as the encoders under --ti-adapter)
            # as in the other steps: DDP waits for each one's
            idle, weighted = 0.0 * sum(weighted.values()), {}
        if config.uses_bn_stats:
            terms["l_d"] = self.bn(batch_stats, self.source_stats, zeta)
            weighted["d"] = term_balance.scheduled_weight(config.lambda_d, config.d_schedule, done) * terms["l_d"]
        if config.uses_ti:
            terms["l_ti"] = self.ti(ti_feats, psi, zeta)
            weighted["ti"] = term_balance.scheduled_weight(config.lambda_ti, config.ti_schedule, done) * terms["l_ti"]
        if self.grad_norms is None:
            self.grad_norms = term_balance.gradient_norms(weighted, self.trainable)
        return sum(weighted.values()) + idle, terms

    def after_step(self) -> None:
        if self.teacher is not None:
            self.teacher.follow(self.model, self.config.ema)

    def evaluate(self, epoch: int, losses: dict[str, float]) -> dict:
        """The epoch's metrics line with the label-free target scores (and the accuracy on the eval
        data, when given); the target scan is kept for the next epoch's pseudo-labels."""
        model, inputs = self.kept, self.inputs
        entry: dict = {"epoch": epoch, **losses, "zeta": [round(float(z), 5) for z in model.zeta().detach().cpu()]}
        if epoch > 0 and self.grad_norms is not None:
            entry["grad_norms"] = self.grad_norms
        self.last_scan = scanned = _scan_target(model, self.config, inputs, self.device, self.progress)
        require_finite(scanned[1], epoch)
        entry.update(target_scores(scanned[1], scanned[2]))
        entry["snd"] = round(snd(_rows(scanned[1], SND_ROWS)), 5)
        if self.held_ti_probs is not None:
            adapted = scan(model, inputs.held_ti_target, self.device)[1]
            entry.update(ti_consistency(self.held_ti_probs, model.zeta().detach().cpu(), adapted))
        if scanned[2] is not None:  # the next epoch's pseudo-labels per class (a collapse shows here)
            entry["pseudo_labels"] = torch.bincount(scanned[2], minlength=scanned[1].shape[1]).tolist()
        if inputs.eval_frames is not None:
            same = inputs.eval_frames is inputs.target
            probs = scanned[1] if same else scan(model, inputs.eval_frames, self.device, self.progress)[1]
            classes = inputs.target_contract.class_names
            entry["accuracy"] = metrics(inputs.eval_labels, probs.numpy(), classes)["accuracy"]
        entry["elapsed_s"] = round(time.time() - self.started, 1)
        if epoch == 0 or better(self.config.keep, entry, self.best):
            self.best = {"epoch": epoch, "im": entry["im"],
                         "state": None if self.config.keep == "last" else _cpu_state(model)}
        return entry

    def describe(self, entry: dict) -> str:
        return _describe(entry, self.epochs)

    def state(self) -> dict:
        return {"teacher": self.teacher.state_dict() if self.teacher is not None else None, "best": self.best}

    def restore(self, state: dict) -> None:
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])
        self.best = state["best"]

    def _ti_batch(self, total: int, generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(this rank's share of a random TI target batch of `total` pairs, ψ_k of the paired source
        images). With ti_augment both images of a pair get the same crop and flip and ψ is computed
        now by the frozen sources."""
        inputs, device = self.inputs, self.device
        pick = distributed.take_share(torch.randperm(len(inputs.ti_target), generator=generator)[:total])
        target = to_device(inputs.ti_target[pick.numpy()], device)
        if self.source_encoders is None:
            return target, [p[pick.to(p.device)] for p in self.psi]
        seed = int(torch.randint(2**62, (1,), generator=generator))
        share = distributed.share()
        source = augment(to_device(inputs.ti_source[pick.numpy()], device), torch.Generator().manual_seed(seed),
                         nearest=False, share=share)
        target = augment(target, torch.Generator().manual_seed(seed), nearest=inputs.target_contract.invalid_zero,
                         share=share)
        with torch.no_grad():
            x = self.source_input(source)
            return target, [enc(x).float() for enc in self.source_encoders]


def require_finite(probs: torch.Tensor, epoch: int) -> None:
    """Refuse to go on (and to write a model) once the ensemble's predictions are not numbers."""
    if not torch.isfinite(probs).all():
        raise UsageError(
            f"the ensemble's predictions on the target became NaN/inf after epoch {epoch}: a loss term exploded "
            "(the squared L_d of --bn-distance sq does with poorly trained sources); the epoch lines' term balance "
            "(grad …) shows which; lower that term's --lambda-*, or --lr, or use --bn-distance kl",
            everywhere=True)


def _scan_target(model: AdaptiveEnsemble, config: AdaptConfig, inputs: AdaptInputs, device: torch.device,
                 progress: bool = False) -> tuple:
    """(features per member, ensemble probabilities, clustering pseudo-labels) of the target set."""
    feats, probs = scan(model, inputs.target, device, progress)
    labels = cluster_pseudo_labels(feats, probs, model.zeta().detach().cpu()) if config.method != "none" else None
    return feats, probs, labels


def _describe(entry: dict, epochs: int) -> str:
    parts = [f"epoch {entry['epoch']}/{epochs}" if entry["epoch"] else "unadapted"]
    if "loss" in entry:
        terms = ", ".join(f"{k[2:]} {entry[k]:.3f}" for k in ("l_ent", "l_div", "l_pl", "l_ti", "l_d") if k in entry)
        parts.append(f"loss {entry['loss']:.3f} ({terms})")
    if "grad_norms" in entry:
        parts.append(term_balance.describe(entry["grad_norms"]))
    if len(entry["zeta"]) > 1:
        parts.append("ζ " + "/".join(f"{z:.3f}" for z in entry["zeta"]))
    if "ti_agree" in entry:
        parts.append(f"TI hold-out agreement {100 * entry['ti_agree']:.0f}%")
    if "accuracy" in entry:
        parts.append(f"accuracy {entry['accuracy']:.1f}%")
    return ": ".join(parts[:1]) + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")
