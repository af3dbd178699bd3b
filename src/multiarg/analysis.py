"""Pure-numpy analyses of learned multi-argument nonlinearities (paper Sections 4.3-4.4).

Everything works on points of a regular grid, a function evaluated on them and weights (the input
density p(x), optionally masked to the 99%-mass region): quadratic fits and their curvature, the
binomial test on curvature signs, and power spectra in Hermite-Bessel / solid-harmonic bases.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special, stats


def quadratic_design(x: np.ndarray) -> np.ndarray:
    x1, x2 = x[:, 0], x[:, 1]
    return np.stack([x1**2, x2**2, x1 * x2, x1, x2, np.ones_like(x1)], axis=1)


def normalised_curvature(coef: np.ndarray) -> float:
    """det A / tr(A^2) of the quadratic form A = [[c1, c3/2], [c3/2, c2]]: the curvature made scale-free,
    in [-1/2, 1/2]; -1/2 is a balanced saddle (x1 x2), +1/2 an isotropic bowl, 0 a ridge or a plane."""
    c1, c2, c3 = coef[:3]
    tr2 = c1**2 + c2**2 + c3**2 / 2
    return float((c1 * c2 - c3**2 / 4) / tr2) if tr2 > 0 else 0.0


def is_ridge(normalised: float, ridge_tol: float) -> bool:
    """Whether a curved fit of normalised curvature ``normalised`` is a ridge, a tie in the sign tests: for
    principal curvatures a and r a, |det A / tr A^2| = |r| / (1 + r^2), so under a small ``ridge_tol`` the minor
    curvature is about that share of the major one or less. Such a function is nearly one-argument, and the
    region's ragged edge may set the sign of its faint minor curvature."""
    return abs(normalised) < ridge_tol


def fit_quadratic(x: np.ndarray, f: np.ndarray, w: np.ndarray | None = None, flat_tol: float = 1e-5,
                  ridge_tol: float = 0.0) -> dict:
    """Weighted least squares of f = c1 x1^2 + c2 x2^2 + c3 x1 x2 + c4 x1 + c5 x2 + c6 over points x (N, 2).

    ``x`` may also be (..., 2) with ``f``/``w`` shaped (...). Returns {"coef": array(6) [c1..c6],
    "r2": weighted R^2, "curvature": c1*c2 - c3**2/4, "normalised" (:func:`normalised_curvature`, 0 for a flat
    fit), "quadratic_size", "tie", "sign"}; negative curvature = hyperbolic (XOR-like). ``quadratic_size`` is the
    weighted RMS of the quadratic part c1 x1^2 + c2 x2^2 + c3 x1 x2 about its mean, over max |f|. A tie has
    ``sign`` 0, else it is the curvature's: ``tie`` is "flat" at or below ``flat_tol`` (constant or affine f, whose
    fitted curvature is rounding noise of either sign), "ridge" by :func:`is_ridge` under ``ridge_tol``, else "".
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1, 2)
    f = np.asarray(f, dtype=np.float64).reshape(-1)
    w = np.ones_like(f) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    # Scaling rows by sqrt(w) turns the weighted problem into an ordinary one; zero-weight cells drop out.
    root, design = np.sqrt(w), quadratic_design(x)
    coef, *_ = np.linalg.lstsq(design * root[:, None], f * root, rcond=None)
    resid = f - design @ coef
    mean = np.sum(w * f) / np.sum(w)
    ss_res, ss_tot = np.sum(w * resid**2), np.sum(w * (f - mean) ** 2)
    # A constant f is fit exactly by c6, so R^2 = 1 there rather than 0/0.
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    c1, c2, c3 = coef[:3]
    curvature = float(c1 * c2 - c3**2 / 4)
    quad = design[:, :3] @ coef[:3]
    spread = np.sqrt(np.sum(w * (quad - np.sum(w * quad) / np.sum(w)) ** 2) / np.sum(w))
    peak = np.max(np.abs(f[w > 0]))
    size = float(spread / peak) if peak > 0 else 0.0
    normalised = normalised_curvature(coef)
    tie = "flat" if size <= flat_tol else "ridge" if is_ridge(normalised, ridge_tol) else ""
    return {"coef": coef, "r2": float(r2), "curvature": curvature, "quadratic_size": size, "tie": tie,
            # a flat fit is a plane, whose scale-free curvature is 0 rather than its rounding noise's
            "normalised": 0.0 if tie == "flat" else normalised, "sign": 0 if tie else int(np.sign(curvature))}


SIGN_NAMES = {-1: "negative", 0: "flat", 1: "positive"}
TIES = ("flat", "ridge")  # the kinds of fit that :func:`fit_quadratic` gives sign 0


def curvature_tie(record: dict, prefix: str = "") -> str:
    """A record's ``{prefix}curvature_tie``: "flat", "ridge" or "". A record made before ridges were ties has none,
    and its sign 0 was a flat fit."""
    tie = record.get(f"{prefix}curvature_tie")
    return ("flat" if record[f"{prefix}curvature_sign"] == 0 else "") if tie is None else tie


def tie_counts(records, prefix: str = "") -> dict:
    """How many of ``records`` are ties of each kind (:func:`curvature_tie`): ``{"n_flat", "n_ridge"}``."""
    return {f"n_{tie}": sum(curvature_tie(r, prefix) == tie for r in records) for tie in TIES}


def ties_text(counts: dict) -> str:
    """:func:`tie_counts` (or a curvature table's row, where a table older than ridges has no n_ridge) in words,
    "+2 flat, +1 ridge"; "" where there are none."""
    found = {tie: int(counts.get(f"n_{tie}") or 0) for tie in TIES}
    return ", ".join(f"+{n} {tie}" for tie, n in found.items() if n)


def start_key(record: dict) -> tuple:
    """The session-I net a record's function grew from (``learned``, ``start``, ``xavier-trained``) or is
    (``xavier-init``): session I keys its nets by activation and seed alone."""
    return record["activation"], record["seed"]


def by_start(values, starts) -> list[list]:
    """``values`` grouped by the session-I net each function grew from (``starts``, one key a value), in
    first-seen order. The learned nets of one seed share their start across datasets and architectures, so where a
    group pools those, a start, not a function, is the independent unit."""
    groups: dict = {}
    for value, start in zip(values, starts, strict=True):
        groups.setdefault(start, []).append(value)
    return list(groups.values())


def start_means(values, starts) -> list[float]:
    """Each start's mean value (:func:`by_start`): one number per independent unit, for a t test."""
    return [float(np.mean(group)) for group in by_start(values, starts)]


def sign_flip_test(scores) -> dict:
    """Exact test that integer ``scores``, one per independent unit, are as likely to be negated: the law of
    sum(e_i scores_i) over all 2^n sign flips e, by convolution. Returns {"p_one_sided" (P[S >= s]),
    "p_two_sided" (P[|S| >= |s|])}; with every score +1 or -1 it is the binomial test against 1/2."""
    scores = [int(x) for x in scores]
    law = np.ones(1)
    for x in map(abs, scores):
        law = 0.5 * (np.pad(law, (2 * x, 0)) + np.pad(law, (0, 2 * x)))
    total, s = sum(map(abs, scores)), sum(scores)  # law[i] is P[S = i - total]
    return {"p_one_sided": float(law[s + total:].sum()),
            "p_two_sided": float(min(1.0, 2 * law[abs(s) + total:].sum()))}


def by_start_test(test: dict, scores: list[int], starts) -> dict:
    """``test``, a :func:`binomial_test` of units scored +1 (a success), -1 or 0 (a tie), redone with the units
    of one session-I start taken together (``"n_starts"``: the starts with a unit not tied). Where a start has
    more than one such unit: p from :func:`sign_flip_test` of the starts' summed scores, and the Clopper-Pearson
    interval at as many trials as starts (conservative: as if a start's units always agreed)."""
    counted = [group for group in by_start(scores, starts) if any(group)]
    if all(sum(map(abs, group)) == 1 for group in counted):  # one unit a start: the binomial test is exact
        return {**test, "n_starts": len(counted)}
    n = len(counted)
    k = test["fraction"] * n
    lo = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
    return {**test, **sign_flip_test([sum(group) for group in counted]), "ci_low": float(lo), "ci_high": float(hi),
            "n_starts": n}


def sign_test(signs, starts=None) -> dict:
    """:func:`binomial_test` of curvature signs -1 / 0 / +1 for more negative ones: the ties (0: flat fits or
    ridges) are left out of n and counted in ``"n_tied"``. With ``starts`` (each function's session-I net),
    functions that share one count as one unit (:func:`by_start_test`)."""
    signs = list(signs)
    negative, positive = sum(s < 0 for s in signs), sum(s > 0 for s in signs)
    test = binomial_test(negative, negative + positive)
    if starts is not None:
        test = by_start_test(test, [-int(np.sign(s)) for s in signs], starts)
    return {**test, "n_tied": len(signs) - negative - positive}


def sign_changes(start, end, starts=None) -> dict:
    """McNemar's exact test of paired curvature signs, each function before (``start``) and after (``end``)
    training: of the pairs whose sign changed between negative and positive, the share that turned negative,
    :func:`binomial_test`-ed against 1/2. A sign 0 (a flat fit or a ridge) on either side is a tie, as in
    :func:`sign_test`, and ``starts`` takes pairs from one session-I net together as it does there.
    Returns its fields plus "to_negative" and "to_positive", the changes each way."""
    pairs = list(zip(start, end, strict=True))
    scores = [int(a > 0 > b) - int(a < 0 < b) for a, b in pairs]
    to_negative, to_positive = scores.count(1), scores.count(-1)
    test = binomial_test(to_negative, to_negative + to_positive)
    if starts is not None:
        test = by_start_test(test, scores, starts)
    return {**test, "to_negative": to_negative, "to_positive": to_positive}


def binomial_test(k: int, n: int) -> dict:
    """Exact binomial test of k successes (negative curvatures, runs matured in time) out of n against p = 1/2.

    Returns {"k", "n", "fraction", "p_one_sided" (P[X >= k], alternative 'greater'), "p_two_sided",
    "ci_low", "ci_high" (95% Clopper-Pearson)}. Computed from the binomial/beta laws directly; agrees
    with scipy.stats.binomtest. Ties (flat fits, ridges) are left out of n as in a sign test; n = 0 gives NaN
    fraction, p and CI.
    """
    k, n = int(k), int(n)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n; got k={k}, n={n}")
    if n == 0:
        return {"k": 0, "n": 0, **dict.fromkeys(("fraction", "p_one_sided", "p_two_sided", "ci_low", "ci_high"),
                                               float("nan"))}
    upper = stats.binom.sf(k - 1, n, 0.5)
    lower = stats.binom.cdf(k, n, 0.5)
    # Under p = 1/2 the law is symmetric, so "as or less likely than k" is exactly the two mirrored tails.
    two = min(1.0, 2 * min(upper, lower))
    alpha = 0.05
    lo = 0.0 if k == 0 else stats.beta.ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(1 - alpha / 2, k + 1, n - k)
    return {"k": k, "n": n, "fraction": k / n, "p_one_sided": float(upper), "p_two_sided": float(two),
            "ci_low": float(lo), "ci_high": float(hi)}


def binomial_power(n: int, fraction: float, alpha: float = 0.05) -> float:
    """Chance that :func:`binomial_test` on n trials finds p_two_sided < alpha when each trial succeeds with
    probability ``fraction``: how likely a run of this size was to show an effect that large."""
    if n == 0 or not 0 <= fraction <= 1:
        return float("nan")
    k = np.arange(n + 1)
    rejects = [binomial_test(int(i), n)["p_two_sided"] < alpha for i in k]
    return float(stats.binom.pmf(k[rejects], n, fraction).sum())


def null_band(n: int, level: float = 0.95) -> tuple[float, float]:
    """Central `level` interval of the fraction k/n under Binomial(n, 1/2) (for Fig. 7g's null band).

    Returns (k_lo/n, (n - k_lo)/n) with k_lo the lower (1-level)/2 quantile; being discrete, it
    covers at least `level` and is symmetric about 1/2.
    """
    if n == 0:
        return float("nan"), float("nan")
    k_lo = int(stats.binom.ppf((1 - level) / 2, n, 0.5))
    return k_lo / n, (n - k_lo) / n


def _orders_2d(l_max: int) -> list[tuple[int, int]]:
    return [(l, m) for l in range(l_max + 1) for m in range(-l, l + 1, 2)]


Basis = tuple[np.ndarray, list[tuple[int, int]]]


def hermite_bessel_basis(points: np.ndarray, l_max: int, scale: float = 1.0) -> Basis:
    """2-D Hermite functions in polar form (Victor et al. 2006), orthonormal in L2(R^2).

    For l = 0..l_max, m in {-l, -l+2, ..., l} and k = (l - |m|)/2:
    phi_lm = sqrt(2 k!/(k+|m|)!) / s * u^|m| L_k^|m|(u^2) exp(-u^2/2) * A_m(theta), u = r/s,
    with A_m = cos(m theta)/sqrt(pi) (m > 0), sin(|m| theta)/sqrt(pi) (m < 0), 1/sqrt(2 pi) (m = 0).
    So x1, x2 live at l = 1 and x1 x2 at (l, m) = (2, -2). Returns (values (..., K), labels [(l, m)])
    for points (..., 2).
    """
    points = np.asarray(points, dtype=np.float64)
    u = np.hypot(points[..., 0], points[..., 1]) / scale
    theta = np.arctan2(points[..., 1], points[..., 0])
    gauss = np.exp(-u**2 / 2)
    labels = _orders_2d(l_max)
    cols = []
    for l, m in labels:
        a, k = abs(m), (l - abs(m)) // 2
        radial = (math.sqrt(2 * math.factorial(k) / math.factorial(k + a)) / scale
                  * u**a * special.eval_genlaguerre(k, a, u**2) * gauss)
        if m == 0:
            angular = np.full_like(theta, 1 / math.sqrt(2 * math.pi))
        elif m > 0:
            angular = np.cos(m * theta) / math.sqrt(math.pi)
        else:
            angular = np.sin(a * theta) / math.sqrt(math.pi)
        cols.append(radial * angular)
    return np.stack(cols, axis=-1), labels


def solid_harmonic_basis(points: np.ndarray, l_max: int, scale: float = 1.0) -> Basis:
    """3-D analogue: Gaussian-weighted solid harmonics, orthonormal in L2(R^3).

    The full 3-D Hermite functions in spherical form are R_kl(r) Y_lm with
    R_kl ∝ u^l L_k^{l+1/2}(u^2) exp(-u^2/2), u = r/s, of total order 2k + l. Choice made here: group by
    angular order l = 0..l_max, m = -l..l, and keep only the lowest radial function k = 0, so
    phi_lm = sqrt(2 / (s^3 Gamma(l + 3/2))) * u^l exp(-u^2/2) * Y_lm(theta, phi) with real Y_lm
    (cos(m phi) for m > 0, sin(|m| phi) for m < 0). Thus x_i is at l = 1 and x1 x2 at l = 2, but the radial
    r^2 = |x|^2 (l = 0, k = 1) is in no order l >= 1, so the shares (over l >= 1) do not see it, where the 2-D basis
    counts the bowl at l = 2. Returns (values (..., K), labels [(l, m)])
    for points (..., 3).
    """
    points = np.asarray(points, dtype=np.float64)
    r = np.linalg.norm(points, axis=-1)
    u = r / scale
    # Direction is arbitrary at the origin; every l > 0 function vanishes there through u^l anyway.
    cos_polar = np.divide(points[..., 2], r, out=np.ones_like(r), where=r > 0)
    azimuth = np.arctan2(points[..., 1], points[..., 0])
    gauss = np.exp(-u**2 / 2)
    labels, cols = [], []
    for l in range(l_max + 1):
        radial = math.sqrt(2 / (scale**3 * special.gamma(l + 1.5))) * u**l * gauss
        for m in range(-l, l + 1):
            a = abs(m)
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - a) / math.factorial(l + a))
            legendre = special.lpmv(a, l, cos_polar)
            if m == 0:
                angular = norm * legendre
            elif m > 0:
                angular = math.sqrt(2) * norm * legendre * np.cos(m * azimuth)
            else:
                angular = math.sqrt(2) * norm * legendre * np.sin(a * azimuth)
            labels.append((l, m))
            cols.append(radial * angular)
    return np.stack(cols, axis=-1), labels


def projections(f: np.ndarray, weights: np.ndarray, basis: np.ndarray, cell_volume: float) -> np.ndarray:
    """``∫ p f phi_k dx`` for every basis function k, as sums over the grid: ``weights`` is the input density
    p(x) on the grid (zero outside the analysed region), ``f`` and ``weights`` are (...), ``basis`` is (..., K)."""
    pf = (np.asarray(f, dtype=np.float64) * np.asarray(weights, dtype=np.float64)).reshape(-1)
    return pf @ np.asarray(basis, dtype=np.float64).reshape(len(pf), -1) * cell_volume


def power_spectrum(f: np.ndarray, weights: np.ndarray, basis: np.ndarray, labels: list[tuple[int, int]],
                   cell_volume: float) -> dict[int, float]:
    """The paper's P_l[f] = sum_m |∫ p f phi_lm dx|^2 from :func:`projections`. Returns {l: P_l}."""
    return power_by_order(projections(f, weights, basis, cell_volume), labels)


def power_by_order(coeffs: np.ndarray, labels: list[tuple[int, int]]) -> dict[int, float]:
    """{l: sum_m coeffs_lm^2}."""
    power: dict[int, float] = {}
    for (l, _), c in zip(labels, coeffs):
        power[l] = power.get(l, 0.0) + float(c**2)
    return power
