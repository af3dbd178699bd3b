"""Session I: fit an inner net to a smoothed random activation map (or leave it Xavier-initialised)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import gaussian_filter

from .activations import InnerNet
from .runtime import derive_seed


@dataclass(frozen=True)
class MapConfig:
    """The random target: ``cells`` unit squares per axis, values ~ U[-1, 1], Gaussian blur ``sigma`` cells."""

    cells: int = 5
    sigma: float = 3.0
    resolution: int = 16  # grid points per cell
    boundary: str = "wrap"  # scipy.ndimage mode at the map's edge; other modes bend the maps one way
    rescale: bool = True  # min-max the blurred map back onto [-1, 1]

    @property
    def half_width(self) -> float:
        return self.cells / 2


def random_map(n_args: int, cfg: MapConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(cell_values, blurred)``: the piecewise-constant draw and its smoothed fine-grid map."""
    rng = np.random.default_rng(seed)
    cells = rng.uniform(-1.0, 1.0, size=(cfg.cells,) * n_args)
    fine = cells
    for axis in range(n_args):
        fine = np.repeat(fine, cfg.resolution, axis=axis)
    blurred = gaussian_filter(fine, sigma=cfg.sigma * cfg.resolution, mode=cfg.boundary)
    if cfg.rescale:
        lo, hi = blurred.min(), blurred.max()
        blurred = 2 * (blurred - lo) / max(hi - lo, 1e-12) - 1
    return cells, blurred


def plane_r2(target: np.ndarray, cfg: MapConfig) -> float:
    """R² of the best affine fit to a map: how close to a plain ramp the blur has left it."""
    n = target.ndim
    points = np.stack(np.meshgrid(*[grid_axis(cfg)] * n, indexing="ij"), axis=-1).reshape(-1, n)
    design, y = np.c_[np.ones(len(points)), points], target.reshape(-1)
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return float(1 - residual @ residual / ((y - y.mean()) @ (y - y.mean())))


def interaction_share(target: np.ndarray) -> float:
    """Share of a map's variance that no sum of one function per argument explains: 0 for an additive map, 1 for
    a pure interaction such as the centred product of two centred ramps."""
    centred = target - target.mean()
    additive = sum(centred.mean(axis=tuple(a for a in range(centred.ndim) if a != axis), keepdims=True)
                   for axis in range(centred.ndim))
    residual = centred - additive
    return float((residual**2).sum() / max((centred**2).sum(), 1e-300))


def grid_axis(cfg: MapConfig) -> np.ndarray:
    """Cell-centre coordinates of the fine grid along one axis."""
    n = cfg.cells * cfg.resolution
    return (np.arange(n) + 0.5) / cfg.resolution - cfg.half_width


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    samples: int = 20000  # fixed regression set drawn uniformly over the map


def pretrain(inner: InnerNet, target: np.ndarray, map_cfg: MapConfig, cfg: PretrainConfig, seed: int) -> dict:
    """Regress ``inner`` onto ``target`` by Adam on MSE; return fit statistics."""
    n = inner.n_args
    axis = grid_axis(map_cfg)
    lookup = RegularGridInterpolator((axis,) * n, target, method="linear", bounds_error=False, fill_value=None)
    rng = np.random.default_rng(derive_seed(seed, "pretrain-points"))
    points = rng.uniform(-map_cfg.half_width, map_cfg.half_width, size=(cfg.samples, n))
    x = torch.as_tensor(points, dtype=torch.float32)
    y = torch.as_tensor(lookup(points), dtype=torch.float32)
    gen = torch.Generator().manual_seed(derive_seed(seed, "pretrain-batches"))
    opt = torch.optim.Adam(inner.parameters(), lr=cfg.lr)
    for _ in range(cfg.steps):
        idx = torch.randint(0, cfg.samples, (cfg.batch_size,), generator=gen)
        loss = torch.nn.functional.mse_loss(inner(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(inner(x), y).item()
    return {"mse": mse, "r2": 1 - mse / y.var(unbiased=False).item()}


def make_initial_inner(n_args: int, init: str, seed: int, hidden: int, depth: int,
                       map_cfg: MapConfig, cfg: PretrainConfig) -> dict:
    """Session I output for one seed: the initial inner net, and for ``pretrained`` its target map."""
    torch.manual_seed(derive_seed(seed, "inner-init"))
    inner = InnerNet(n_args, hidden, depth)
    record = {"n_args": n_args, "hidden": hidden, "depth": depth, "init": init, "seed": seed,
              "half_width": map_cfg.half_width}
    if init == "xavier":
        inner.xavier_(torch.Generator().manual_seed(derive_seed(seed, "xavier")))
        record.update(target=torch.empty(0), cells=torch.empty(0), mse=float("nan"), r2=float("nan"),
                      target_plane_r2=float("nan"))
    elif init == "pretrained":
        cells, target = random_map(n_args, map_cfg, derive_seed(seed, "random-map"))
        record.update(pretrain(inner, target, map_cfg, cfg, seed), target_plane_r2=plane_r2(target, map_cfg))
        record.update(target=torch.as_tensor(target, dtype=torch.float32),
                      cells=torch.as_tensor(cells, dtype=torch.float32))
    else:
        raise ValueError(f"unknown inner-net init {init!r}")
    record["state_dict"] = inner.state_dict()
    return record
