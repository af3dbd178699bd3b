import numpy as np
import pytest
import torch
from scipy import stats

from multiarg.activations import load_inner
from multiarg.analysis import fit_quadratic
from multiarg.pretrain import (MapConfig, PretrainConfig, grid_axis, interaction_share, make_initial_inner, plane_r2,
                               random_map)


def _total_variation(a):
    return sum(np.abs(np.diff(a, axis=k)).mean() for k in range(a.ndim))


def test_cell_values_are_uniform_on_minus_one_one():
    draws = np.concatenate([random_map(2, MapConfig(), seed)[0].ravel() for seed in range(200)])
    assert draws.min() >= -1 and draws.max() <= 1
    assert stats.kstest(draws, stats.uniform(loc=-1, scale=2).cdf).pvalue > 0.01
    assert abs(draws.var() - 1 / 3) < 0.02


@pytest.mark.parametrize("n", [1, 2, 3])
def test_blurred_map_is_smooth_and_rescaled(n):
    cfg = MapConfig(resolution=8)
    cells, target = random_map(n, cfg, seed=1)
    assert target.shape == (cfg.cells * cfg.resolution,) * n
    assert target.min() == pytest.approx(-1) and target.max() == pytest.approx(1)
    piecewise = cells
    for axis in range(n):
        piecewise = np.repeat(piecewise, cfg.resolution, axis=axis)
    rescaled_piecewise = 2 * (piecewise - piecewise.min()) / (piecewise.max() - piecewise.min()) - 1
    assert _total_variation(target) < _total_variation(rescaled_piecewise)


@pytest.mark.parametrize("boundary", ["reflect", "wrap"])
def test_sigma_three_cells_flattens_the_map_without_rescaling(boundary):
    # why rescale exists: sigma = 3 cells on a 5-cell grid averages the 25 values almost away
    stds = [random_map(2, MapConfig(boundary=boundary, rescale=False), seed)[1].std() for seed in range(20)]
    assert np.median(stds) < 0.1 * np.sqrt(1 / 3)


def _median_over_maps(statistic, boundary: str, n_args: int = 2, sigma: float = 3.0) -> float:
    """Median of ``statistic(map, cfg)`` over 50 blurred maps, 8 grid points per cell."""
    cfg = MapConfig(sigma=sigma, resolution=8, boundary=boundary)
    return np.median([statistic(random_map(n_args, cfg, seed)[1], cfg) for seed in range(50)])


@pytest.mark.parametrize("n_args", [1, 2])
def test_the_papers_blur_leaves_a_ramp_with_reflecting_edges_not_wrapped_ones(n_args):
    # sigma = 3 cells keeps little but the map's lowest mode: with reflecting edges a ramp, with wrapped ones a
    # period across the map, which no plane fits; half a cell keeps the rough map the paper's motivation asks for
    assert _median_over_maps(plane_r2, "reflect", n_args) > 0.95
    assert _median_over_maps(plane_r2, "wrap", n_args) < 0.5
    assert _median_over_maps(plane_r2, "reflect", n_args, sigma=0.5) < 0.4


def test_interaction_share_tells_sums_of_one_function_per_argument_from_products():
    x = np.linspace(-1, 1, 41)
    a, b = np.meshgrid(x, x, indexing="ij")
    assert interaction_share(np.sin(3 * a) + b**2) == pytest.approx(0, abs=1e-12)
    assert interaction_share(a * b) == pytest.approx(1)
    assert interaction_share(a * b + a) == pytest.approx(np.var(a * b) / np.var(a * b + a))


def test_wrapped_edges_leave_the_papers_blur_a_sum_of_one_function_per_argument():
    # sigma = 3 cells over a 5-cell period keeps one Fourier mode per axis; their products are damped far more
    def share(target, _cfg):
        return interaction_share(target)

    assert _median_over_maps(share, "wrap") < 1e-4 < 1e-3 < _median_over_maps(share, "reflect")


def test_the_blurs_boundary_mode_sets_which_way_the_maps_curve():
    # with reflecting edges the heavy blur keeps the two ramps and their product, a saddle, so session I starts
    # nearly every 2-arg net XOR-like; zero padding bends most maps into a bowl or a cap instead
    # (bench/start_curvature.py measures this at full resolution, and what session II does to it)
    axis = grid_axis(MapConfig(resolution=8))
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    disk = (points**2).sum(-1) <= 4

    def negative(boundary):
        cfg = MapConfig(boundary=boundary, resolution=8)
        return np.mean([fit_quadratic(points[disk], random_map(2, cfg, seed)[1][disk])["sign"] < 0
                        for seed in range(200)])

    assert negative("reflect") > 0.9
    assert negative("constant") < 0.35
    assert 0.35 < negative("wrap") < 0.65


def test_grid_axis_tiles_the_cells_symmetrically():
    axis = grid_axis(MapConfig(cells=5, resolution=4))
    assert axis[0] == pytest.approx(-2.5 + 0.125) and axis[-1] == pytest.approx(2.5 - 0.125)


def test_pretraining_fits_the_target():
    torch.manual_seed(0)
    record = make_initial_inner(2, "pretrained", 0, 64, 2, MapConfig(resolution=8), PretrainConfig(steps=600))
    assert record["r2"] > 0.95 and 0 < record["target_plane_r2"] <= 1
    assert record["target"].shape == (40, 40)


def test_pretraining_fits_the_whole_map_not_just_its_centre():
    """R^2 on the full grid: a net fitted to part of a rough map (sigma 1 cell) misses the rest."""
    cfg = MapConfig(sigma=1.0, resolution=8)
    record = make_initial_inner(2, "pretrained", 0, 64, 2, cfg, PretrainConfig(steps=300))
    points = np.stack(np.meshgrid(grid_axis(cfg), grid_axis(cfg), indexing="ij"), axis=-1)
    with torch.no_grad():
        fitted = load_inner(record)(torch.as_tensor(points, dtype=torch.float32)).numpy()
    target = record["target"].numpy()
    assert 1 - ((fitted - target) ** 2).mean() / target.var() > 0.98  # sampling the central half: 0.66


@pytest.mark.parametrize("init", ["pretrained", "xavier"])
def test_each_seed_draws_its_own_initial_inner_net(init):
    def make(seed):
        return make_initial_inner(2, init, seed, 8, 2, MapConfig(resolution=4), PretrainConfig(steps=5))

    first, again, other = make(0), make(0), make(1)
    assert torch.equal(first["target"], again["target"])
    assert all(torch.equal(v, again["state_dict"][k]) for k, v in first["state_dict"].items())
    assert not torch.equal(first["state_dict"]["net.0.weight"], other["state_dict"]["net.0.weight"])
    if init == "pretrained":
        assert not torch.equal(first["target"], other["target"])


def test_xavier_record_has_no_target():
    record = make_initial_inner(2, "xavier", 0, 64, 2, MapConfig(), PretrainConfig())
    assert record["target"].numel() == 0 and np.isnan(record["mse"])
    assert torch.count_nonzero(record["state_dict"]["net.0.bias"]) == 0
