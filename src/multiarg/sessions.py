"""Sessions II (joint training) and III (retraining with the inner net frozen), with their outputs."""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch

from . import data
from .activations import load_inner
from .io import file_identity, load_torch, save_torch
from .models import ModelConfig, OuterNet
from .runtime import derive_seed, resolve_device
from .train import TrainConfig, fit_run, write_metrics

log = logging.getLogger(__name__)


def load_model(path: Path) -> tuple[OuterNet, dict]:
    """Rebuild a trained network from its ``model.pt``; returns ``(model, record)``."""
    record = load_torch(path)
    model = OuterNet(ModelConfig(**record["model_config"]))
    model.load_state_dict(record["state_dict"])
    return model.eval(), record


def _snapshot_inner(model: OuterNet, epoch: int, extra: dict) -> dict:
    """Keep the inner net's parameters after every epoch (Fig. 5)."""
    state = {k: v.detach().cpu().clone() for k, v in model.inner.state_dict().items()}
    return {**extra, "snapshots": extra.get("snapshots", []) + [state], "epochs": extra.get("epochs", []) + [epoch]}


def train_session(session: int, model_cfg: ModelConfig, train_cfg: TrainConfig, *, data_path: Path,
                  out_dir: Path, data_split: dict, init_path: Path | None = None,
                  source_model: Path | None = None, device: str = "auto", stop_after: int | None = None,
                  adversarial=None) -> dict:
    """Run session 2 or 3 for one configuration and write ``model.pt``, ``metrics.csv``
    (and, in session 2, ``snapshots.pt``) under ``out_dir``.

    Session 2 takes its initial inner net from the session-I record ``init_path``; session 3 takes
    the trained inner net of ``source_model``, freezes it and re-initialises the outer network.
    ``adversarial`` (an :class:`~multiarg.adversarial.AdversarialConfig`) trains on PGD examples instead
    (Table 1: session 3 with adversarial training). Returns the model record, or ``{}`` when ``stop_after``
    interrupted training.
    """
    if session not in (2, 3):
        raise ValueError(f"session must be 2 or 3, got {session}")
    prepared = data.load_prepared(data_path)
    splits = data.split(prepared, **data_split)
    spec = model_cfg.spec
    inner = None
    if spec.learned and session == 2:
        if init_path is None:
            raise ValueError(f"session 2 of {spec.name} needs the session-I inner net (init_path)")
        inner = load_inner(load_torch(init_path))
    elif spec.learned:
        if source_model is None:
            raise ValueError("session 3 needs the session-2 model (source_model)")
        inner = load_model(source_model)[0].inner
    torch.manual_seed(derive_seed(train_cfg.seed, "outer-init", session))
    model = OuterNet(model_cfg, prepared["mean"], prepared["std"], inner=inner)
    if session == 3 and inner is not None:
        model.inner.requires_grad_(False)
    identity = {"session": session, "model": model_cfg.to_dict(), "train": asdict(train_cfg), "split": data_split,
                "data": data.manifest_sha(data_path), "init": file_identity(init_path),
                "source": file_identity(source_model)}
    perturb = None
    if adversarial is not None:
        from .adversarial import PGDTraining

        identity["adversarial"] = asdict(adversarial)
        perturb = PGDTraining(adversarial, train_cfg.seed)
    snapshot = _snapshot_inner if (session == 2 and spec.learned) else None
    result = fit_run(model, splits, train_cfg, out_dir, identity, device=resolve_device(device), on_epoch=snapshot,
                     stop_after=stop_after, desc=f"session{session} {model_cfg.activation}", perturb=perturb)
    if not result["finished"]:
        return {}
    record = {"model_config": model_cfg.to_dict(), "state_dict": result["state"], "session": session,
              "train_config": asdict(train_cfg), "best_epoch": result["best_epoch"],
              "stopped_epoch": result["stopped_epoch"], "dataset": prepared["name"],
              "data_source": prepared["source"], "data_exact": prepared["exact"], "data_note": prepared["note"],
              "adversarial": asdict(adversarial) if adversarial is not None else None,
              "arithmetic": result["arithmetic"]}
    if session == 2:
        save_torch(result["extra"] if snapshot else {}, out_dir / "snapshots.pt")
    write_metrics(result["history"], out_dir / "metrics.csv")
    save_torch(record, out_dir / "model.pt")
    (out_dir / "checkpoint.pt").unlink(missing_ok=True)
    return record
