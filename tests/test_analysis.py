import itertools
import math

import numpy as np
import pytest
from scipy import stats

from multiarg.analysis import (binomial_power, binomial_test, curvature_tie, fit_quadratic, hermite_bessel_basis,
                               is_ridge, normalised_curvature, null_band, power_spectrum, sign_changes, sign_flip_test,
                               sign_test, solid_harmonic_basis, tie_counts, ties_text)


def grid(bins: int, extent: float, dim: int) -> tuple[np.ndarray, float]:
    """Cell centres (bins,)*dim + (dim,) over [-extent, extent]^dim (as inputs.centers) and the cell volume."""
    c = (np.arange(bins) + 0.5) / bins * 2 * extent - extent
    return np.stack(np.meshgrid(*[c] * dim, indexing="ij"), axis=-1), (2 * extent / bins) ** dim


def gram(basis: np.ndarray, cell_volume: float) -> np.ndarray:
    flat = basis.reshape(-1, basis.shape[-1])
    return flat.T @ flat * cell_volume


# --- bases -------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 0.6])
def test_hermite_bessel_basis_is_orthonormal(scale):
    x, dv = grid(200, 8.0, 2)
    basis, labels = hermite_bessel_basis(x, 4, scale)
    assert labels == [(l, m) for l in range(5) for m in range(-l, l + 1, 2)] and basis.shape == (200, 200, 15)
    # Midpoint sums of Gaussian-decaying smooth functions converge spectrally, so this is far below 1e-3.
    assert np.abs(gram(basis, dv) - np.eye(15)).max() < 1e-8


def test_solid_harmonic_basis_is_orthonormal():
    x, dv = grid(60, 7.0, 3)
    basis, labels = solid_harmonic_basis(x, 3)
    assert labels == [(l, m) for l in range(4) for m in range(-l, l + 1)] and basis.shape[-1] == 16
    assert np.abs(gram(basis, dv) - np.eye(16)).max() < 1e-8


def test_basis_orders_put_linear_at_l1_and_products_at_l2():
    x, dv = grid(100, 7.0, 2)
    basis, labels = hermite_bessel_basis(x, 4)
    g = np.exp(-(x**2).sum(-1) / 2)
    for f, label in [(x[..., 0], (1, 1)), (x[..., 1], (1, -1)), (x[..., 0] * x[..., 1], (2, -2))]:
        coeffs = np.tensordot(f * g, basis, 2) * dv
        hit = np.abs(coeffs) > 1e-10
        assert [lab for lab, h in zip(labels, hit) if h] == [label]

    x3, dv3 = grid(40, 6.0, 3)
    basis3, labels3 = solid_harmonic_basis(x3, 3)
    g3 = np.exp(-(x3**2).sum(-1) / 2)
    for f, order in [(x3[..., 2], 1), (x3[..., 0] * x3[..., 1], 2)]:
        coeffs = np.tensordot(f * g3, basis3, 3) * dv3
        assert {l for (l, _), c in zip(labels3, coeffs) if abs(c) > 1e-10} == {order}


# --- quadratic fits ----------------------------------------------------------------------------

def test_fit_recovers_x1_x2_exactly():
    x, _ = grid(41, 3.0, 2)
    fit = fit_quadratic(x, x[..., 0] * x[..., 1])
    np.testing.assert_allclose(fit["coef"], [0, 0, 1, 0, 0, 0], atol=1e-10)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-12)
    assert fit["curvature"] == pytest.approx(-0.25, abs=1e-10)


def test_fit_recovers_rotated_shifted_quadratic():
    x, _ = grid(41, 3.0, 2)
    angle, d, shift, c0 = 0.6, np.array([1.5, -0.4]), np.array([0.7, -1.2]), 0.3
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    q = rot.T @ np.diag(d) @ rot
    y = x - shift
    f = np.einsum("...i,ij,...j->...", y, q, y) + c0
    lin = -2 * q @ shift
    expected = [q[0, 0], q[1, 1], 2 * q[0, 1], lin[0], lin[1], shift @ q @ shift + c0]
    w = np.exp(-(x**2).sum(-1) / 2)
    fit = fit_quadratic(x, f, w)
    np.testing.assert_allclose(fit["coef"], expected, atol=1e-9)
    # The curvature is det(Q), i.e. the product of the principal curvatures, whatever the rotation.
    assert fit["curvature"] == pytest.approx(d[0] * d[1], abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-12)


def test_weights_change_the_fit_of_a_non_quadratic_function():
    x, _ = grid(41, 3.0, 2)
    f = np.abs(x[..., 0]) ** 3 + np.sin(2 * x[..., 1])
    r = (x**2).sum(-1)
    flat = fit_quadratic(x, f)
    narrow = fit_quadratic(x, f, np.exp(-r / 0.5))
    assert np.abs(flat["coef"] - narrow["coef"]).max() > 0.1
    # Matches the weighted normal equations (A^T W A) c = A^T W f.
    w = np.exp(-r / 0.5).reshape(-1)
    a = np.stack([x[..., 0] ** 2, x[..., 1] ** 2, x[..., 0] * x[..., 1], x[..., 0], x[..., 1],
                  np.ones_like(r)], -1).reshape(-1, 6)
    np.testing.assert_allclose(narrow["coef"], np.linalg.solve(a.T @ (w[:, None] * a), a.T @ (w * f.reshape(-1))),
                               rtol=1e-8, atol=1e-10)
    # R^2 is weighted throughout: residuals and spread both about the weighted mean of f
    for fit, weights in ((narrow, w), (flat, np.ones_like(w))):
        fv = f.reshape(-1)
        ss_res = np.sum(weights * (fv - a @ fit["coef"]) ** 2)
        ss_tot = np.sum(weights * (fv - np.sum(weights * fv) / weights.sum()) ** 2)
        assert fit["r2"] == pytest.approx(1 - ss_res / ss_tot, rel=1e-9) and 0 < fit["r2"] < 1


def test_zero_weight_cells_are_ignored():
    x, _ = grid(41, 3.0, 2)
    r = np.sqrt((x**2).sum(-1))
    inside = r < 2.0
    f = np.where(inside, 2 * x[..., 0] ** 2 - x[..., 0] * x[..., 1] + 1, 50 * np.cos(5 * r))
    fit = fit_quadratic(x, f, inside.astype(float))
    np.testing.assert_allclose(fit["coef"], [2, 0, -1, 0, 0, 1], atol=1e-9)
    assert fit["curvature"] == pytest.approx(-0.25, abs=1e-9)


def test_flat_fits_get_sign_zero_and_faint_curvature_keeps_its_sign():
    """Constant and affine functions (evaluated in float32, as inner nets are) have a fitted curvature made of
    rounding noise; their size is scale-free, so a faint but real saddle keeps its sign at any gain."""
    x, _ = grid(41, 3.0, 2)
    affine = (30 + 2 * x[..., 0] - x[..., 1]).astype(np.float32).astype(np.float64)
    for f in (np.full(x.shape[:-1], 0.37), affine, np.zeros(x.shape[:-1])):
        fit = fit_quadratic(x, f)
        assert fit["sign"] == 0 and fit["quadratic_size"] < 1e-7
    for gain in (1e-3, 1.0, 1e4):
        fit = fit_quadratic(x, gain * (affine + 1e-3 * x[..., 0] * x[..., 1]))
        assert fit["sign"] == -1 and fit["quadratic_size"] == pytest.approx(
            fit_quadratic(x, affine + 1e-3 * x[..., 0] * x[..., 1])["quadratic_size"], rel=1e-6)
    bowl = fit_quadratic(x, affine + 1e-3 * (x**2).sum(-1))
    assert bowl["sign"] == 1 and fit_quadratic(x, affine + 1e-3 * (x**2).sum(-1), flat_tol=0.1)["sign"] == 0


def test_a_ridge_votes_unless_the_ridge_tolerance_ties_it():
    """A nearly one-argument function, minor principal curvature 1% of the major: |det A / tr A^2| = 0.01 / 1.0001.
    It votes with its sign by default (the paper's rule) and is a tie, keeping its curvature, under a tolerance."""
    x, _ = grid(41, 3.0, 2)
    for minor in (0.01, -0.01):
        f = 2 * x[..., 0] ** 2 + 2 * minor * x[..., 1] ** 2 + x[..., 1]
        votes, tied = fit_quadratic(x, f), fit_quadratic(x, f, ridge_tol=0.02)
        assert (votes["tie"], votes["sign"]) == ("", np.sign(minor))
        assert votes["normalised"] == pytest.approx(minor / (1 + minor**2)) == tied["normalised"]
        assert (tied["tie"], tied["sign"]) == ("ridge", 0)
        assert fit_quadratic(x, f, ridge_tol=0.005)["sign"] == np.sign(minor)
    balanced = fit_quadratic(x, x[..., 0] * x[..., 1], ridge_tol=0.49)
    assert (balanced["tie"], balanced["sign"], balanced["normalised"]) == ("", -1, pytest.approx(-0.5))
    plane = fit_quadratic(x, 1 + x[..., 0], ridge_tol=0.02)  # flat before it could be a ridge
    assert (plane["tie"], plane["sign"], plane["normalised"]) == ("flat", 0, 0.0)
    assert is_ridge(0.0199, 0.02) and is_ridge(-0.0199, 0.02) and not is_ridge(0.02, 0.02)
    assert not is_ridge(1e-9, 0.0)  # a zero tolerance lets every fit not flat vote
    # an exact ridge's fitted curvature is rounding noise, of no sign to count; any tolerance ties it
    exact = fit_quadratic(x, x[..., 0] ** 2 + x[..., 1], ridge_tol=1e-6)
    assert abs(exact["curvature"]) < 1e-12 and (exact["tie"], exact["sign"]) == ("ridge", 0)


def test_normalised_curvature_range():
    assert normalised_curvature(np.array([1.0, 1.0, 0, 0, 0, 0])) == pytest.approx(0.5)
    assert normalised_curvature(np.array([1.0, 0.0, 0, 0, 0, 0])) == 0.0
    assert normalised_curvature(np.array([1.0, -1.0, 0, 0, 0, 0])) == pytest.approx(-0.5)


def test_ties_are_counted_and_named_by_kind():
    records = [{"curvature_tie": t} for t in ("", "flat", "ridge", "ridge", "")]
    assert tie_counts(records) == {"n_flat": 1, "n_ridge": 2}
    assert ties_text(tie_counts(records)) == "+1 flat, +2 ridge"
    assert ties_text({"n_flat": "0", "n_ridge": "0"}) == "" and ties_text({"n_flat": "3"}) == "+3 flat"
    # a record made before ridges were ties has no curvature_tie: its sign 0 was a flat fit
    old = [{"curvature_sign": 0}, {"curvature_sign": -1},
           {"initial_curvature_sign": 0, "initial_curvature_tie": "ridge"}]
    assert (curvature_tie(old[0]), curvature_tie(old[1]), curvature_tie(old[2], "initial_")) == ("flat", "", "ridge")
    assert tie_counts(old[:2]) == {"n_flat": 1, "n_ridge": 0}


def test_sign_counts_and_the_all_flat_test():
    counted = sign_test([-1, 1, 0, -1, 0])
    assert (counted["k"], counted["n"] - counted["k"], counted["n_tied"]) == (2, 1, 2)
    assert counted["p_two_sided"] == binomial_test(2, 3)["p_two_sided"]
    assert sign_test([0, 0])["n"] == 0
    empty = binomial_test(0, 0)
    assert empty["n"] == 0 and np.isnan(empty["p_two_sided"]) and np.isnan(empty["ci_low"])
    assert all(np.isnan(null_band(0)))
    with pytest.raises(ValueError):
        binomial_test(1, 0)


def test_sign_changes_test_the_discordant_pairs_and_leave_flat_ones_out():
    start = [-1, -1, -1, 1, 1, 1, 1, 1, 0, -1]
    end = [-1, 1, -1, -1, -1, -1, -1, 1, -1, 0]
    changes = sign_changes(start, end)
    assert (changes["to_negative"], changes["to_positive"], changes["k"], changes["n"]) == (4, 1, 4, 5)
    assert changes["p_two_sided"] == pytest.approx(stats.binomtest(4, 5).pvalue, rel=1e-9)
    unchanged = sign_changes([-1, 1], [-1, 1])
    assert unchanged["n"] == 0 and np.isnan(unchanged["p_two_sided"])
    with pytest.raises(ValueError):
        sign_changes([-1, 1], [1])


def test_the_sign_flip_test_is_exact_and_the_binomial_test_for_single_units():
    scores = [2, 1, -1, 3, 0, 2]
    flips = [sum(e * x for e, x in zip(signs, scores)) for signs in itertools.product((1, -1), repeat=len(scores))]
    test = sign_flip_test(scores)
    assert test["p_one_sided"] == pytest.approx(np.mean([f >= sum(scores) for f in flips]))
    assert test["p_two_sided"] == pytest.approx(np.mean([abs(f) >= abs(sum(scores)) for f in flips]))
    for k in range(8):
        single = sign_flip_test([1] * k + [-1] * (7 - k))
        assert single["p_one_sided"] == pytest.approx(binomial_test(k, 7)["p_one_sided"], rel=1e-12)
        assert single["p_two_sided"] == pytest.approx(binomial_test(k, 7)["p_two_sided"], rel=1e-12)


def test_functions_from_one_start_count_as_one_unit():
    signs = [-1, -1, -1, -1, -1, -1, 1, 0]
    alone = sign_test(signs, starts=range(8))
    assert alone == {**sign_test(signs), "n_starts": 7}  # a start each: the binomial test, unchanged
    # three starts of two functions each, one of one and a flat one: 6 of 7 negative, but from 4 starts
    shared = sign_test(signs, starts=[0, 0, 1, 1, 2, 2, 3, 4])
    assert (shared["k"], shared["n"], shared["n_starts"], shared["n_tied"]) == (6, 7, 4, 1)
    assert shared["p_two_sided"] == pytest.approx(sign_flip_test([2, 2, 2, -1])["p_two_sided"])  # 4 / 16
    assert shared["p_two_sided"] > alone["p_two_sided"]
    # the interval as if each start were one trial, 6/7 of them negative: wider than the functions' own
    assert shared["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 24 / 7, 4 - 24 / 7 + 1))
    assert shared["ci_low"] < alone["ci_low"] and shared["ci_high"] > alone["ci_high"]
    changes = sign_changes([1, 1, 1, -1], [-1, -1, -1, 1], starts=["a", "a", "b", "c"])
    assert (changes["to_negative"], changes["n_starts"]) == (3, 3)
    assert changes["p_two_sided"] == pytest.approx(sign_flip_test([2, 1, -1])["p_two_sided"])


# --- binomial test on curvature signs ----------------------------------------------------------

def test_binomial_test_matches_binomtest_for_all_counts():
    n = 24
    for k in range(n + 1):
        r = binomial_test(k, n)
        two, greater = stats.binomtest(k, n, 0.5), stats.binomtest(k, n, 0.5, alternative="greater")
        ci = two.proportion_ci(confidence_level=0.95, method="exact")
        assert r["p_two_sided"] == pytest.approx(two.pvalue, rel=1e-9)
        assert r["p_one_sided"] == pytest.approx(greater.pvalue, rel=1e-9)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
        assert r["fraction"] == k / n and r["k"] == k and r["n"] == n


def test_paper_counts():
    # Paper: CNN 78% negative, p = 0.007; MLP p = 0.06. Two-sided tests on 24 trials reproduce both.
    assert binomial_test(19, 24)["p_two_sided"] == pytest.approx(0.00661, abs=5e-5)
    assert binomial_test(17, 24)["p_two_sided"] == pytest.approx(0.0639, abs=5e-4)
    # "78% of 48" is 37.44 trials: k = 37 (77.1%) gives two-sided 2.2e-4 / one-sided 1.1e-4,
    # k = 38 (79.2%) gives 6.2e-5 / 3.1e-5; either way ~1e-4, far below the paper's 0.007.
    r37, r38 = binomial_test(37, 48), binomial_test(38, 48)
    assert r37["p_two_sided"] == pytest.approx(2.22e-4, rel=1e-2)
    assert r37["p_one_sided"] == pytest.approx(1.11e-4, rel=1e-2)
    assert r38["p_two_sided"] == pytest.approx(6.17e-5, rel=1e-2)


def test_binomial_power_sums_the_rejection_region_scipy_finds():
    for n, fraction in ((24, 0.78), (24, 7 / 24), (10, 0.9), (7, 0.5)):
        region = [k for k in range(n + 1) if stats.binomtest(k, n, 0.5).pvalue < 0.05]
        assert binomial_power(n, fraction) == pytest.approx(stats.binom.pmf(region, n, fraction).sum(), rel=1e-12)
    assert binomial_power(24, 0.5) <= 0.05  # exact and discrete, so at most its level under the null
    assert binomial_power(5, 1.0) == 0.0  # 5/5 gives p = 0.0625: five trials can never show it
    assert binomial_power(24, 0.6) < binomial_power(24, 0.7) < binomial_power(24, 0.8)
    assert np.isnan(binomial_power(0, 0.78))


def test_null_band_for_24_trials():
    lo, hi = null_band(24)
    assert lo < 0.5 < hi and lo + hi == pytest.approx(1.0)
    k_lo, k_hi = round(lo * 24), round(hi * 24)
    cover = stats.binom.cdf(k_hi, 24, 0.5) - stats.binom.cdf(k_lo - 1, 24, 0.5)
    narrower = stats.binom.cdf(k_hi - 1, 24, 0.5) - stats.binom.cdf(k_lo, 24, 0.5)
    assert cover >= 0.95 > narrower
    assert not lo <= 19 / 24 <= hi  # the CNN's 19/24 lies outside the null band (Fig. 7g)


# --- spectra -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gaussian_grid():
    x, dv = grid(120, 6.0, 2)
    return x, dv, np.exp(-(x**2).sum(-1) / 2) / (2 * math.pi)


def test_spectrum_of_product_and_linear_with_matched_scale(gaussian_grid):
    # With s = 1 and a standard-normal p, p*x1*x2 and p*x1 are themselves single basis functions,
    # so all power sits at one order and equals the analytic ||p f||^2.
    x, dv, p = gaussian_grid
    basis, labels = hermite_bessel_basis(x, 6)
    prod = power_spectrum(x[..., 0] * x[..., 1], p, basis, labels, dv)
    assert prod[2] == pytest.approx(1 / (16 * math.pi), rel=1e-9)
    assert all(v < 1e-20 for l, v in prod.items() if l != 2)
    a, b = 2.0, -1.0
    lin = power_spectrum(a * x[..., 0] + b * x[..., 1], p, basis, labels, dv)
    assert lin[1] == pytest.approx((a**2 + b**2) / (8 * math.pi), rel=1e-9)
    assert all(v < 1e-20 for l, v in lin.items() if l != 1)


def test_spectrum_structure_with_mismatched_scale(gaussian_grid):
    # With s != 1 power leaks to higher orders, but parity and the angular content still fix the structure.
    x, dv, p = gaussian_grid
    basis, labels = hermite_bessel_basis(x, 8, scale=1.5)
    prod = power_spectrum(x[..., 0] * x[..., 1], p, basis, labels, dv)
    assert all(prod[l] < 1e-10 for l in (0, 1, 3, 5, 7))  # odd by parity, l = 0 since x1 x2 ~ sin(2 theta)
    assert prod[2] > prod[4] > prod[6] > prod[8] > 0
    assert prod[2] == max(prod.values())
    lin = power_spectrum(2 * x[..., 0] - x[..., 1], p, basis, labels, dv)
    assert all(lin[l] < 1e-10 for l in (0, 2, 4, 6, 8))
    assert lin[1] > lin[3] > lin[5] > 0
    # Parseval: the truncated spectrum captures nearly all of ||p f||^2 and never exceeds it.
    norm = ((p * x[..., 0] * x[..., 1]) ** 2).sum() * dv
    assert 0.98 * norm < sum(prod.values()) <= norm * (1 + 1e-9)


def test_spectrum_and_fit_from_histogram_over_99_percent_region():
    import torch

    from multiarg.inputs import InputHistogram, centers, mass_region

    torch.manual_seed(0)
    bins, extent = 60, 6.0
    h = InputHistogram(2, bins, extent)
    h.add(torch.randn(100_000, 2))
    r = h.result()
    mask = mass_region(r["counts"], r["total"], 0.99).numpy()
    c = centers(bins, extent).numpy()
    x = np.stack(np.meshgrid(c, c, indexing="ij"), -1)
    dv = (2 * extent / bins) ** 2
    density = r["counts"].numpy() / (r["total"] * dv) * mask
    basis, labels = hermite_bessel_basis(x, 4)
    prod = power_spectrum(x[..., 0] * x[..., 1], density, basis, labels, dv)
    assert max(prod, key=prod.get) == 2 and prod[2] > 20 * max(prod[l] for l in (0, 1, 3, 4))
    fit = fit_quadratic(x, x[..., 0] * x[..., 1] + 0.5 * x[..., 0], density)
    np.testing.assert_allclose(fit["coef"], [0, 0, 1, 0.5, 0, 0], atol=1e-9)
