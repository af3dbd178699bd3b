"""Where the inner nets are driven: histograms of their inputs over the test set, and the region
holding a given fraction (99% in the paper) of them."""
from __future__ import annotations

import torch

from . import data
from .activations import MultiArgActivation
from .io import save_torch
from .runtime import resolve_device
from .train import _to_input


class InputHistogram:
    """Streaming histogram of ``(points, n)`` inputs on ``bins^n`` cells over ``[-extent, extent]^n``."""

    def __init__(self, n_args: int, bins: int, extent: float):
        self.n, self.bins, self.extent = n_args, bins, extent
        self.counts = torch.zeros(bins**n_args, dtype=torch.float64)
        self.total = 0
        self.sum = torch.zeros(n_args, dtype=torch.float64)
        self.outer = torch.zeros(n_args, n_args, dtype=torch.float64)

    def add(self, points: torch.Tensor) -> None:
        points = points.detach().double()
        self.total += len(points)
        self.sum += points.sum(0).cpu()
        self.outer += (points.T @ points).cpu()
        cell = torch.floor((points + self.extent) / (2 * self.extent) * self.bins).long()
        inside = ((cell >= 0) & (cell < self.bins)).all(1)
        flat = torch.zeros(int(inside.sum()), dtype=torch.long, device=points.device)
        for axis in range(self.n):
            flat = flat * self.bins + cell[inside, axis]
        self.counts += torch.bincount(flat, minlength=self.counts.numel()).double().cpu()

    def result(self) -> dict:
        mean = self.sum / max(self.total, 1)
        cov = self.outer / max(self.total, 1) - torch.outer(mean, mean)
        return {"counts": self.counts.view((self.bins,) * self.n), "total": self.total, "extent": self.extent,
                "mean": mean, "cov": cov}


def centers(bins: int, extent: float) -> torch.Tensor:
    return (torch.arange(bins, dtype=torch.float64) + 0.5) / bins * 2 * extent - extent


def mass_region(counts: torch.Tensor, total: float, mass: float = 0.99) -> torch.Tensor:
    """Boolean mask of the fewest (densest) cells holding ``mass`` of all ``total`` inputs.

    Inputs outside the histogram count toward ``total``; if the cells inside hold less than
    ``mass``, every occupied cell is kept.
    """
    flat = counts.flatten()
    order = torch.argsort(flat, descending=True)
    cum = torch.cumsum(flat[order], 0) / total
    keep = int(torch.searchsorted(cum, torch.tensor(mass, dtype=cum.dtype)).item()) + 1
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[order[:keep]] = True
    return (mask & (flat > 0)).view(counts.shape)


@torch.no_grad()
def histogram_inputs(model: torch.nn.Module, x: torch.Tensor, *, bins: int, extent: float, batch_size: int,
                     device: torch.device) -> dict:
    """Run uint8 images ``x`` through ``model`` and histogram what each of its learned activations receives.

    Returns the per-activation histograms (``layers``, in module order) and their pooled counts.
    """
    acts = [m for m in model.modules() if isinstance(m, MultiArgActivation)]
    if not acts:
        raise ValueError(f"{type(model).__name__} has no learned activation to collect inputs for")
    n = acts[0].n_args
    layers = [InputHistogram(n, bins, extent) for _ in acts]
    hooks = [a.register_forward_pre_hook(lambda mod, inp, h=h: h.add(mod.arguments(inp[0])))
             for a, h in zip(acts, layers)]
    model.to(device).eval()
    try:
        for start in range(0, len(x), batch_size):
            model(_to_input(x[start:start + batch_size].to(device)))
    finally:
        for h in hooks:
            h.remove()
    per_layer = [h.result() for h in layers]
    total = sum(r["total"] for r in per_layer)
    return {"n_args": n, "bins": bins, "extent": extent, "layers": per_layer, "total": total,
            "counts": sum(r["counts"] for r in per_layer),
            "mean": sum(r["mean"] * r["total"] for r in per_layer) / total, "images": len(x)}


def collect_inputs(model_path, data_path, out, *, bins: int, extent: float, batch_size: int, device: str,
                   test_limit: int | None, split_seed: int) -> dict:
    """Run the test set through a trained model and histogram every inner-net input, per layer and pooled."""
    from .sessions import load_model

    model, _ = load_model(model_path)
    x, _ = data.test_subset(data.load_prepared(data_path), test_limit, split_seed)
    result = {**histogram_inputs(model, x, bins=bins, extent=extent, batch_size=batch_size,
                                 device=resolve_device(device)), "model": str(model_path)}
    save_torch(result, out)
    return result
