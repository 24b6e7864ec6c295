"""`socket-edge adapt`: the training loop of SOCKET and its baselines (Algorithm 1).

none      the unadapted ensemble, equal ζ
shot      L_ma = L_ent − L_div + λ_pl·L_pl, ζ equal
decision  L_ma with learned ζ
socket    L_ma + λ_TI·L_TI + λ_d·L_d with learned ζ
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

from socket_edge.adapt.bn_alignment import BNStatsLoss, group_by_layout
from socket_edge.adapt.config import AdaptConfig
from socket_edge.adapt.information_max import InformationMaximization
from socket_edge.adapt.inputs import AdaptInputs, load_inputs, load_sources
from socket_edge.adapt.model import AdaptiveEnsemble, running_stats
from socket_edge.adapt.pseudo_labels import PseudoLabelLoss, cluster_pseudo_labels
from socket_edge.adapt.run_folder import RunFolder, plot_curves
from socket_edge.adapt.ti_alignment import TIAlignmentLoss
from socket_edge.errors import UsageError
from socket_edge.evaluation import metrics
from socket_edge.models import artifact
from socket_edge.models.input_module import InputNormalizer
from socket_edge.models.torch_utils import augment, lr_schedule, resolve_device, seed_everything
from socket_edge.models.zoo import parameter_groups
from socket_edge.progress import bar

SCAN_BATCH = 128


def run_folder_for(out: Path) -> Path:
    """The default run folder beside the output: adapted.pt → adapted-run/."""
    return out.with_name(out.stem + "-run")


@torch.no_grad()
def scan(model: AdaptiveEnsemble, frames: np.ndarray, device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Eval-mode pass over frames: (features per member, ensemble probabilities), on the CPU."""
    model.eval()
    feats: list[list[torch.Tensor]] = [[] for _ in model.members]
    probs = []
    for start in range(0, len(frames), SCAN_BATCH):
        raw = torch.from_numpy(frames[start:start + SCAN_BATCH]).to(device)
        with _autocast(device):
            f, p = model(raw)
        for k, fk in enumerate(f):
            feats[k].append(fk.float().cpu())
        probs.append(model.mix(p).float().cpu())
    return [torch.cat(f) for f in feats], torch.cat(probs)


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
            raw = torch.from_numpy(inputs.ti_source[start:start + SCAN_BATCH]).to(device)
            with _autocast(device):
                feats.append(member.encoder(normalise(raw)).float())
        out.append(torch.cat(feats))
        member.cpu()
    return out


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def adapt(config: AdaptConfig, sources: list[Path], target: Path, out: Path, *, ti_source: Path | None = None,
          ti_target: Path | None = None, eval_data: Path | None = None, classes: list[str] | None = None,
          ti_classes: list[str] | None = None, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> dict:
    """Adapt the sources to the target modality; write the ensemble artifact and the run folder."""
    started = time.time()
    out = Path(out)
    run = RunFolder(run_folder_for(out))
    run.prepare(out, resume, overwrite, example="adapted.pt")
    device = resolve_device(config.device)
    src = load_sources([Path(p) for p in sources], config.img_size)
    inputs = load_inputs(config, src, Path(target), ti_source and Path(ti_source), ti_target and Path(ti_target),
                         eval_data and Path(eval_data), classes, ti_classes, progress)
    described = {
        "sources": [str(p) for p in sources], "target": str(target), "ti_source": str(ti_source),
        "ti_target": str(ti_target), "eval_data": str(eval_data), "classes": classes, "ti_classes": ti_classes,
    }
    settings = {"config": config.to_dict(), "inputs": described}

    seed_everything(config.seed)
    model = AdaptiveEnsemble(inputs.target_contract, [copy.deepcopy(m) for m in src.members], config.learns_zeta)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    source_stats = [[(m.to(device), v.to(device)) for m, v in running_stats(s)] for s in src.members]
    psi = source_ti_features(inputs, device) if config.uses_ti else None
    im_loss, pl_loss = InformationMaximization(), PseudoLabelLoss()
    ti_loss = TIAlignmentLoss(config.ti_distance)
    bn_loss = BNStatsLoss(group_by_layout([m.encoder for m in model.members]), config.bn_reduction)

    groups = [g for m in model.members for g in parameter_groups(m, config.lr)]
    if config.learns_zeta:
        groups.append({"params": [model.w], "lr": config.lr_zeta, "lr0": config.lr_zeta, "weight_decay": 0.0})
    optimizer = torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    epochs = 0 if config.method == "none" else config.epochs
    n = len(inputs.target)
    batch = min(config.batch_size, n)
    steps_per_epoch = max(1, n // batch)

    if resume:
        history, first_epoch = run.restore_checkpoint(settings, model, optimizer, generator)
        last_scan = None
        print(f"resuming {run.root} after epoch {first_epoch}/{epochs}", flush=True)
    else:
        run.write_json(run.config, settings)
        entry, last_scan = _epoch_entry(0, model, inputs, device, {}, started)
        history, first_epoch = [entry], 0
        run.write_metrics(history)
        if progress:
            print(_describe(history[0], epochs), flush=True)

    for epoch in range(first_epoch, epochs):
        labels = None
        if config.lambda_pl > 0:
            feats, probs = last_scan or scan(model, inputs.target, device)
            labels = cluster_pseudo_labels(feats, probs, model.zeta().detach().cpu()).to(device)
        model.train()
        order = torch.randperm(n, generator=generator)
        sums: dict[str, float] = {}
        for step in bar(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", enabled=progress, leave=False):
            lr_schedule(optimizer, (epoch * steps_per_epoch + step) / (epochs * steps_per_epoch))
            idx = order[step * batch:(step + 1) * batch]
            raw = augment(torch.from_numpy(inputs.target[idx.numpy()]), generator,
                          nearest=inputs.target_contract.invalid_zero).to(device)
            terms = {}
            with _autocast(device):
                with model.recording_bn_stats() as batch_stats:
                    _, probs_k = model(raw)
                zeta = model.zeta()
                mixed = model.mix(probs_k)
                loss, terms["l_ent"], terms["l_div"] = im_loss(mixed)
                if labels is not None:
                    terms["l_pl"] = pl_loss(mixed, labels[idx.to(device)])
                    loss = loss + config.lambda_pl * terms["l_pl"]
                if config.uses_bn_stats:
                    terms["l_d"] = bn_loss(batch_stats, source_stats, zeta)
                    loss = loss + config.lambda_d * terms["l_d"]
                if config.uses_ti:
                    pick = torch.randperm(len(inputs.ti_target), generator=generator)[:batch]
                    with model.frozen_bn_stats():
                        ti_feats = model.encode(torch.from_numpy(inputs.ti_target[pick.numpy()]).to(device))
                    terms["l_ti"] = ti_loss(ti_feats, [p[pick.to(p.device)] for p in psi], zeta)
                    loss = loss + config.lambda_ti * terms["l_ti"]
            if not torch.isfinite(loss):
                raise UsageError(
                    f"the loss became {loss.item()} in epoch {epoch + 1}; lower --lr or the loss weights "
                    f"(terms: {', '.join(f'{k} {v.item():.3g}' for k, v in terms.items())})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for key, value in {"loss": loss, **terms}.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
        losses = {k: round(v / steps_per_epoch, 5) for k, v in sums.items()}
        entry, last_scan = _epoch_entry(epoch + 1, model, inputs, device, losses, started)
        history.append(entry)
        run.write_metrics(history)
        run.save_checkpoint(epoch + 1, settings, model, optimizer, generator, history)
        if progress:
            print(_describe(history[-1], epochs), flush=True)

    ensemble = model.to_ensemble().cpu().eval()
    result = {
        "method": config.method, "epochs": history, "zeta": [float(z) for z in ensemble.zeta],
        "seconds": round(time.time() - started, 1), "target_n": n,
    }
    if "accuracy" in history[-1]:
        result["accuracy"] = history[-1]["accuracy"]
    prov = artifact.provenance(
        stage="adapt", method=config.method, seed=config.seed, config=config.to_dict(), inputs=described,
        sources=src.provenance, data=inputs.target_list.summary(), ti=inputs.ti_summary, metrics=result,
        device=str(device), run_folder=str(run.root),
    )
    artifact.save(ensemble, out, "ensemble", prov)
    plot_curves(history, run.curves, f"{config.method}: {', '.join(Path(p).name for p in sources)} → "
                                     f"{config.modality} ({Path(target).name})")
    run.checkpoint.unlink(missing_ok=True)
    return result


def _epoch_entry(epoch: int, model: AdaptiveEnsemble, inputs: AdaptInputs, device: torch.device,
                 losses: dict, started: float) -> tuple[dict, tuple | None]:
    """The epoch's metrics line, and the eval-mode scan when the eval data are the target images
    (the next epoch's pseudo-labels need exactly that pass, with the same weights)."""
    entry: dict = {"epoch": epoch, **losses, "zeta": [round(float(z), 5) for z in model.zeta().detach().cpu()]}
    reusable = None
    if inputs.eval_frames is not None:
        result = scan(model, inputs.eval_frames, device)
        entry["accuracy"] = metrics(inputs.eval_labels, result[1].numpy(), inputs.target_contract.class_names)["accuracy"]
        reusable = result if inputs.eval_frames is inputs.target else None
    entry["elapsed_s"] = round(time.time() - started, 1)
    return entry, reusable


def _describe(entry: dict, epochs: int) -> str:
    parts = [f"epoch {entry['epoch']}/{epochs}" if entry["epoch"] else "unadapted"]
    if "loss" in entry:
        terms = ", ".join(f"{k[2:]} {entry[k]:.3f}" for k in ("l_ent", "l_div", "l_pl", "l_ti", "l_d") if k in entry)
        parts.append(f"loss {entry['loss']:.3f} ({terms})")
    if len(entry["zeta"]) > 1:
        parts.append("ζ " + "/".join(f"{z:.3f}" for z in entry["zeta"]))
    if "accuracy" in entry:
        parts.append(f"accuracy {entry['accuracy']:.1f}%")
    return ": ".join(parts[:1]) + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")
