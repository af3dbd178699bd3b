"""The training engine: epochs, evaluation, early stopping, per-epoch checkpoints and exact resume."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .activations import fell_back, get_kernel
from .io import load_torch, save_torch, write_text
from .runtime import derive_seed, tf32_ops

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds")
MONITORS = ("val_error", "val_loss")
AUGMENTATIONS = ("none", "crop", "crop_flip")  # of training batches; the paper names none
COMPILE_MODES = ("none", "default", "reduce-overhead")  # torch.compile's mode; reduce-overhead adds CUDA graphs
_compile = "none"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    seed: int
    max_epochs: int
    lr: float = 1e-3
    batch_size: int = 128
    eval_batch_size: int = 1000
    patience: int = 20  # the paper's early-stopping window, in epochs
    monitor: str = "val_error"
    restore_best: bool = True  # end at the best-validation epoch (the paper's "saturation")
    augment: str = "none"
    crop_pad: int = 4  # a crop shifts the image by up to this many pixels each way (zero padding)

    def __post_init__(self):
        small = {k: v for k, v in (("max_epochs", self.max_epochs), ("patience", self.patience),
                                   ("batch_size", self.batch_size), ("eval_batch_size", self.eval_batch_size))
                 if v < 1}
        if small or not self.lr > 0 or self.crop_pad < 0:
            raise ValueError(f"epochs, patience and batch sizes must be >= 1, lr > 0 and crop_pad >= 0 (got {small}, "
                             f"lr={self.lr}, crop_pad={self.crop_pad})")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")


class EarlyStopping:
    """Stop once the monitored value has not improved for ``patience`` consecutive epochs."""

    def __init__(self, patience: int, best: float = math.inf, best_epoch: int = 0, bad_epochs: int = 0):
        self.patience, self.best, self.best_epoch, self.bad_epochs = patience, best, best_epoch, bad_epochs

    def step(self, value: float, epoch: int) -> bool:
        """Record one epoch; return True if it is the new best."""
        if value < self.best:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}


def set_compile(mode: str) -> str:
    """Train through ``torch.compile(model, mode=mode)`` from now on (``"none"``: eager); returns the previous mode.
    Compiled networks draw their random numbers (dropout) from torch's generator as eager ones do (Inductor's
    ``fallback_random``), so a compiled run keeps the eager run's masks and resumes exactly; it differs from it
    by float rounding order only."""
    global _compile
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    if mode != "none":
        import torch._inductor.config

        torch._inductor.config.fallback_random = True
    previous, _compile = _compile, mode
    return previous


def compiled(model: nn.Module) -> nn.Module:
    """``model`` as :func:`set_compile` chose: compiled (sharing its parameters), or itself."""
    return model if _compile == "none" else torch.compile(model, mode=_compile)


@contextlib.contextmanager
def frozen(model: nn.Module):
    """``model`` with no parameter requiring a gradient, restored after: an attack differentiates to the input
    only, and the inner-net and DAC kernels then skip the weight gradients (autograd's own operations do anyway)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _to_input(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255)


def augment_batch(x: torch.Tensor, mode: str, pad: int, generator: torch.Generator) -> torch.Tensor:
    """``(B, C, H, W)`` images, each shifted by a random crop of its zero-padded copy (``crop``) and, for
    ``crop_flip``, mirrored left-right with probability 1/2. The draws come from ``generator`` (on the CPU, so a
    run's augmentations do not depend on its device) and the gather runs on the images' device."""
    if mode == "none":
        return x
    b, c, h, w = x.shape
    shift = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=generator).to(x.device)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[:, None, None]
    rows = (shift[0] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (shift[1] + torch.arange(w, device=x.device))[:, None, None, :]
    x = nn.functional.pad(x, (pad,) * 4)[batch, channel, rows, cols]
    if mode == "crop_flip":
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(flip, x.flip(-1), x)
    return x


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One Adam step on the cross-entropy of a batch; returns the (detached) loss and logits."""
    logits = model(inputs)
    loss = nn.functional.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def run_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
              optimizer: torch.optim.Optimizer | None = None, generator: torch.Generator | None = None,
              perturb: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
              augment: tuple[str, int] = ("none", 0)) -> tuple[float, float]:
    """One pass over ``(x, y)``: training when an optimizer is given, else evaluation. Returns (loss, acc).

    ``augment`` (mode, pad) transforms training batches (:func:`augment_batch`, drawing from ``generator``);
    ``perturb(model, inputs, labels)``, if given, then replaces each batch's [0, 1] inputs (adversarial training).
    """
    training = optimizer is not None
    model.train(training)
    n = len(x)
    order = torch.randperm(n, generator=generator).to(x.device) if training else torch.arange(n, device=x.device)
    total_loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    with torch.set_grad_enabled(training):
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            inputs = _to_input(x[idx])
            if training:
                inputs = augment_batch(inputs, *augment, generator)
            if perturb is not None:
                inputs = perturb(model, inputs, y[idx])
            if training:
                loss, logits = train_step(model, optimizer, inputs, y[idx])
            else:
                logits = model(inputs)
                loss = nn.functional.cross_entropy(logits, y[idx])
            total_loss += loss.double() * len(idx)  # detached: train_step's, or computed without grad
            correct += (logits.argmax(1) == y[idx]).sum()
    mean_loss = total_loss.item() / n  # checked once per epoch, not per batch: a GPU then never waits on the host
    if training and not math.isfinite(mean_loss):
        raise TrainingDiverged(f"non-finite training loss ({mean_loss}) in an epoch of {n} samples")
    return mean_loss, correct.item() / n


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _read_checkpoint(path: Path) -> dict:
    """The checkpoint's state, or {} (with a warning) if it cannot be read: a damaged checkpoint costs the epochs
    it held, not the run, which would otherwise fail on every retry."""
    try:
        state = load_torch(path)
    except Exception as e:  # torch raises many types for a damaged or foreign pickle
        log.warning("ignoring unreadable checkpoint %s (%s: %s); training from the start", path, type(e).__name__, e)
        return {}
    if not isinstance(state, dict) or not {"fingerprint", "ran_on"} <= state.keys():
        log.warning("ignoring checkpoint %s: not a checkpoint of this version; training from the start", path)
        return {}
    return state


def _as_tuple(obj):
    return tuple(_as_tuple(o) for o in obj) if isinstance(obj, (list, tuple)) else obj


def metrics_csv(history: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def rounding_of(device: torch.device) -> str:
    """What decides a run's rounding beyond its settings: the device, and on a CPU the instruction set of PyTorch's
    kernels (runs repeat exactly on one, not across them)."""
    if device.type == "cpu":
        return f"cpu ({torch.backends.cpu.get_cpu_capability()})"
    return f"{device.type} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def fit(model: nn.Module, splits: dict, cfg: TrainConfig, checkpoint: Path, *,
        fingerprint: str, device: torch.device, on_epoch: Callable[[nn.Module, int, dict], dict] | None = None,
        stop_after: int | None = None, desc: str = "train",
        perturb: Callable[[int, str], Callable | None] | None = None) -> dict:
    """Train the model's trainable parameters with Adam, checkpointing after every epoch.

    If ``checkpoint`` exists and carries the same ``fingerprint``, training resumes from it and ends
    exactly as an uninterrupted run would (same data order, dropout masks and optimizer state).
    ``extra = on_epoch(model, epoch, extra)`` runs before training (epoch 0) and after every epoch,
    e.g. to snapshot the inner net; ``extra`` is checkpointed with the rest. ``stop_after`` ends the call
    after that many epochs of this call (tests use it to simulate a kill). ``perturb(epoch, split)`` gives
    the batch transform for that epoch's "train", "val" and "test" passes, or None (e.g.
    ``adversarial.PGDTraining``); for an exact resume it must depend on its arguments only.
    Returns ``{"history", "best_epoch", "stopped_epoch", "state", "extra"}``.
    """
    empty = [k for k, (_, y) in splits.items() if not len(y)]
    if empty:
        raise ValueError(f"no images to train on: the {', '.join(empty)} split is empty (a validation set selects "
                         "the epoch and stops training)")
    model.to(device)
    data = {k: (x.to(device), y.to(device)) for k, (x, y) in splits.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    stopper = EarlyStopping(cfg.patience)
    history: list[dict] = []
    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    extra: dict = {}
    epoch = 0
    ran_on = [rounding_of(device)]
    if checkpoint.exists():
        state = _read_checkpoint(checkpoint)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            stopper = EarlyStopping(cfg.patience, **state["stopper"])
            history, best_state, extra, epoch = state["history"], state["best_state"], state["extra"], state["epoch"]
            _set_rng_state(state["rng"])
            log.info("resumed %s from %s at epoch %d", desc, checkpoint, epoch)
            # e.g. a preempted GPU job rerun on a CPU node, or a SLURM retry on another kind of CPU
            ran_on = list(dict.fromkeys(state["ran_on"] + ran_on))
            if len(ran_on) > 1:
                log.warning("resumed on %s a checkpoint written on %s: from here the run rounds differently from "
                            "an uninterrupted one", ran_on[-1], ", ".join(ran_on[:-1]))
        elif state:
            log.warning("ignoring checkpoint %s: it belongs to a different configuration", checkpoint)
    if epoch == 0 and on_epoch is not None:
        extra = on_epoch(model, 0, extra)
    stepper = compiled(model)
    done_here = 0
    bar = tqdm(total=cfg.max_epochs, initial=epoch, desc=desc, unit="epoch", mininterval=5, ascii=True)
    while epoch < cfg.max_epochs and not stopper.should_stop:
        if stop_after is not None and done_here >= stop_after:
            break
        epoch += 1
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "shuffle", epoch))
        adv = {s: perturb(epoch, s) if perturb is not None else None
               for s in ("train", "val", "test")}
        train_loss, train_acc = run_epoch(stepper, *data["train"], cfg.batch_size, optimizer, gen,
                                          adv["train"], (cfg.augment, cfg.crop_pad))
        val_loss, val_acc = run_epoch(stepper, *data["val"], cfg.eval_batch_size, perturb=adv["val"])
        test_loss, test_acc = run_epoch(stepper, *data["test"], cfg.eval_batch_size,
                                        perturb=adv["test"])
        if not math.isfinite(val_loss):
            raise TrainingDiverged(f"non-finite validation loss at epoch {epoch}")
        row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss, val_acc=val_acc,
                   test_loss=test_loss, test_acc=test_acc, seconds=time.perf_counter() - t0)
        history.append(row)
        monitored = 1 - val_acc if cfg.monitor == "val_error" else val_loss
        if stopper.step(monitored, epoch):
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            extra = on_epoch(model, epoch, extra)
        save_torch({"fingerprint": fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "stopper": stopper.state_dict(), "history": history, "best_state": best_state,
                    "extra": extra, "epoch": epoch, "rng": _rng_state(), "ran_on": ran_on}, checkpoint)
        done_here += 1
        bar.update(1)
        bar.set_postfix(val_acc=f"{val_acc:.4f}", test_acc=f"{test_acc:.4f}", refresh=False)
        log.info("%s epoch %d: train %.4f/%.4f val %.4f/%.4f test %.4f/%.4f (%.1fs)", desc, epoch, train_loss,
                 train_acc, val_loss, val_acc, test_loss, test_acc, row["seconds"])
    bar.close()
    final = best_state if cfg.restore_best else {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"history": history, "best_epoch": stopper.best_epoch, "stopped_epoch": epoch, "state": final,
            "extra": extra, "finished": epoch >= cfg.max_epochs or stopper.should_stop, "ran_on": ran_on}


def fit_run(model: nn.Module, splits: dict, cfg: TrainConfig, out_dir: Path, identity: dict, **kwargs) -> dict:
    """:func:`fit` with its checkpoint at ``out_dir/checkpoint.pt``, fingerprinted by ``identity`` (a JSON-able
    mapping of everything that defines the run, so a changed run never resumes a stale checkpoint). The inner-net
    kernel, the compile mode and the TF32 setting are part of the identity, since their rounding differs, and of the
    result (``arithmetic``), for the record a model is saved with, which also says whether a layer fell back to
    eager and what the run's epochs ran on (more than one kind where a resume moved it: :func:`rounding_of`)."""
    arithmetic = {"inner_kernel": get_kernel(), "compile": _compile, "tf32": tf32_ops()}
    fingerprint = hashlib.sha256(json.dumps({**identity, **arithmetic}, sort_keys=True, default=str).encode())
    out_dir.mkdir(parents=True, exist_ok=True)
    result = fit(model, splits, cfg, out_dir / "checkpoint.pt", fingerprint=fingerprint.hexdigest(), **kwargs)
    return {**result, "arithmetic": {**arithmetic, "eager_fallback": fell_back(), "ran_on": result["ran_on"]}}


def write_metrics(history: list[dict], path: Path) -> None:
    write_text(metrics_csv(history), path)


def read_metrics(path: str | Path) -> dict[str, np.ndarray]:
    """``metrics.csv`` as one array per column."""
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]} if rows else {}
