"""Adversarial training (L-inf PGD, Madry et al. 2018) and the AutoAttack evaluation of Table 1.

Models take [0, 1] images and standardise inside, so every eps is in [0, 1] pixel units.
AutoAttack is the authors' code (github.com/fra31/auto-attack) as released on PyPI under the name
``pyautoattack``; that release has the same attacks and settings but a keyword API (``attacks=``,
``batch_size=``) and logs through the ``auto-attack`` logger instead of taking a ``log_path``.

Adversarial training plugs into ``train.fit`` through its ``perturb`` hook: ``PGDTraining(cfg, seed)``
maps ``(epoch, split)`` to a batch transform ``(model, inputs, labels) -> inputs``.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from pyautoattack import AutoAttack
from torch import nn

from .runtime import derive_seed
from .train import _to_input, frozen

log = logging.getLogger(__name__)

Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
VERSIONS = ("standard", "plus")  # AutoAttack's versions for deterministic models


def pgd_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
               random_start: bool = True, generator: torch.Generator | None = None,
               train_mode: bool = False) -> torch.Tensor:
    """L-inf PGD on the cross-entropy: ``steps`` signed-gradient steps of ``step_size`` from a uniform
    random start in the eps-ball (drawn from the CPU ``generator``), each projected onto the ball around
    ``x`` and onto [0, 1]. Returns detached adversarial inputs; the model's mode is restored.

    The attack runs in eval mode unless ``train_mode``: our nets have dropout but no batch statistics, so
    eval mode attacks the deterministic network that is evaluated (also by AutoAttack) rather than a random
    dropout sub-network, and the result depends on ``generator`` alone.
    """
    was_training = model.training
    model.train(train_mode)
    x = x.detach()
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator).to(x.device)
        x_adv = torch.min(torch.max(x + (2 * noise - 1) * eps, lo), hi)
    try:
        with frozen(model):
            for _ in range(steps):
                x_adv.requires_grad_(True)
                with torch.enable_grad():  # run_epoch evaluates under no_grad
                    loss = nn.functional.cross_entropy(model(x_adv), y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, [x_adv])
                x_adv = torch.min(torch.max(x_adv.detach() + step_size * grad.sign(), lo), hi)
    finally:
        model.train(was_training)
    return x_adv.detach()


@dataclass(frozen=True)
class AdversarialConfig:
    """PGD adversarial training; ``defaults(dataset)`` gives Madry et al.'s attack for each dataset."""

    eps: float
    step_size: float
    steps: int
    random_start: bool = True
    warmup_epochs: int = 0  # eps and step size ramp linearly to full over these epochs (0 = from the start)
    clean_fraction: float = 0.0  # share of each training batch left clean (0 = pure PGD training, Madry)
    attack_train_mode: bool = False  # craft training examples with dropout active (see pgd_attack)
    robust_eval: bool = True  # validate under PGD at full eps, so early stopping picks robust models
    robust_test: bool = False  # the test set under PGD too, every epoch: a curve only, which nothing selects on

    def __post_init__(self):
        if self.eps < 0 or self.step_size <= 0 or self.steps < 0 or self.warmup_epochs < 0:
            raise ValueError(f"need eps >= 0, step_size > 0, steps >= 0, warmup_epochs >= 0: {self}")
        if not 0 <= self.clean_fraction <= 1:
            raise ValueError(f"clean_fraction must lie in [0, 1], got {self.clean_fraction}")

    def scale(self, epoch: int) -> float:
        """Fraction of eps used for training in ``epoch`` (1-based)."""
        return 1.0 if self.warmup_epochs == 0 else min(1.0, epoch / self.warmup_epochs)


DEFAULTS = {
    # Madry et al.: 40 steps of 0.01 at eps 0.3. The 10-epoch ramp is ours: at the full eps from the start a
    # 3x64 ReLU MLP with dropout sat at chance for 13 epochs (10k images), with it it learned from epoch 1.
    "mnist": AdversarialConfig(eps=0.3, step_size=0.01, steps=40, warmup_epochs=10),
    # Madry et al.: 7 steps of 2/255 at eps 8/255 (Table 1 evaluates at 0.031 <= 8/255).
    "cifar10": AdversarialConfig(eps=8 / 255, step_size=2 / 255, steps=7),
}


def defaults(dataset: str, **overrides) -> AdversarialConfig:
    """The default configuration for ``dataset``, with any fields replaced by ``overrides``."""
    if dataset not in DEFAULTS:
        raise ValueError(f"no adversarial defaults for {dataset!r}; known: {sorted(DEFAULTS)}")
    return replace(DEFAULTS[dataset], **overrides)


class PGDTraining:
    """``fit``'s ``perturb`` hook: PGD examples for training batches at the epoch's (ramped) eps and, with
    ``robust_eval`` and ``robust_test``, for validation and test batches at the full eps. Each (epoch, split) draws
    its random starts from its own seeded generator, so a resumed run repeats an uninterrupted one."""

    def __init__(self, cfg: AdversarialConfig, seed: int):
        self.cfg, self.seed = cfg, seed

    def __call__(self, epoch: int, split: str) -> Perturb | None:
        cfg, training = self.cfg, split == "train"
        if not {"train": True, "val": cfg.robust_eval, "test": cfg.robust_test}[split]:
            return None
        scale = cfg.scale(epoch) if training else 1.0
        clean = cfg.clean_fraction if training else 0.0
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "pgd", split, epoch))

        def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            k = round(clean * len(x))  # batches are shuffled, so the first k are a random subset
            adv = pgd_attack(model, x[k:], y[k:], cfg.eps * scale, cfg.step_size * scale, cfg.steps,
                             cfg.random_start, generator, cfg.attack_train_mode and training)
            return torch.cat([x[:k], adv])

        return perturb


def make_adversary(model: nn.Module, eps: float, version: str = "standard",
                   device: str | torch.device = "cpu", seed: int = 0) -> AutoAttack:
    """AutoAttack (L-inf) with the settings of ``version``; ``attacks_to_run`` lists its attacks in order."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    return AutoAttack(model, norm="Linf", eps=eps, version=version, device=device, seed=seed)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                      for i in range(0, len(x), batch_size)])


def _broken(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float,
            batch_size: int, device: torch.device) -> torch.Tensor:
    """Points whose adversarial example is misclassified, inside the eps-ball and inside [0, 1]."""
    flat = x_adv.flatten(1)
    inside = ((x_adv - x).abs().flatten(1).amax(1) <= eps + 1e-5) & (flat.amin(1) >= 0) & (flat.amax(1) <= 1)
    return inside & (_predict(model, x_adv, batch_size, device) != y)


@contextlib.contextmanager
def _log_to(path: Path | None):
    """Send AutoAttack's log records, debug level included, and this module's to ``path``."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    aa_log = logging.getLogger("auto-attack")
    saved = aa_log.level, aa_log.propagate
    aa_log.setLevel(logging.DEBUG)
    aa_log.propagate = False  # its debug chatter goes to the file, not to the console
    for lg in (aa_log, log):
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg in (aa_log, log):
            lg.removeHandler(handler)
        aa_log.level, aa_log.propagate = saved
        handler.close()


def autoattack_eval(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, eps: float,
                    version: str = "standard", attacks: Sequence[str] | None = None, batch_size: int = 500,
                    device: str | torch.device = "cpu", seed: int = 0, log_path: Path | None = None) -> dict:
    """Clean and robust accuracy of ``model`` on uint8 images under AutoAttack (L-inf, ``eps`` on [0, 1]).

    ``version`` sets the attacks and their settings; 'standard' (Table 1) is APGD-CE, APGD-T and FAB-T with
    9 target classes each, and Square with 5000 queries. ``attacks`` runs only those of the version's attacks,
    in its order and with its settings: a cheaper demo evaluation that is not AutoAttack's number, so the
    result says ``complete: False``. As inside AutoAttack, each attack sees only the points still robust;
    running one call per attack is what lets ``flipped`` count each attack's contribution. Every
    adversarial example is re-checked here: a point counts as broken only if its example is misclassified,
    inside the eps-ball and inside [0, 1]. The result is JSON-ready; ``robust_points`` indexes the points
    that withstood every attack.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    x, y = _to_input(torch.as_tensor(x_uint8).cpu()), torch.as_tensor(y).cpu()
    adversary = make_adversary(model, eps, version, device, seed)
    full = list(adversary.attacks_to_run)
    if attacks is not None and (not attacks or set(attacks) - set(full)):
        raise ValueError(f"attacks must be a non-empty subset of {version!r}'s {full}, got {attacks}")
    order = full if attacks is None else [a for a in full if a in attacks]
    correct = _predict(model, x, batch_size, device) == y
    robust, flipped, after, seconds = correct.clone(), {}, {}, {}
    # the attacks reseed torch's global RNG; keep the caller's streams intact
    with _log_to(log_path), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), frozen(model):
        for name in order:
            t0, idx = time.perf_counter(), robust.nonzero().flatten()
            broken = torch.zeros(len(idx), dtype=torch.bool)
            if len(idx):
                adversary.attacks_to_run = [name]
                x_adv, y_adv = adversary.run_standard_evaluation(x[idx], y[idx], batch_size=batch_size)
                broken = _broken(model, x_adv, x[idx], y[idx], eps, batch_size, device)
                if rejected := int(((y_adv != y[idx]) & ~broken).sum()):
                    log.warning("%s: %d adversarial examples failed the re-check", name, rejected)
            robust[idx[broken]] = False
            flipped[name], after[name] = int(broken.sum()), robust.float().mean().item()
            seconds[name] = time.perf_counter() - t0
            log.info("%s flipped %d of %d points (%.1fs); robust accuracy %.4f", name, flipped[name],
                     len(idx), seconds[name], after[name])
    n_clean, n_robust = int(correct.sum()), int(robust.sum())
    assert n_robust <= n_clean and sum(flipped.values()) == n_clean - n_robust
    n = len(y)
    return {"n": n, "eps": eps, "norm": "Linf", "version": version, "attacks": order,
            "complete": order == full, "seed": seed, "clean_correct": n_clean, "clean_accuracy": n_clean / n,
            "robust_correct": n_robust, "robust_accuracy": n_robust / n, "flipped": flipped,
            "robust_accuracy_after": after, "seconds": seconds,
            "robust_points": robust.nonzero().flatten().tolist()}
