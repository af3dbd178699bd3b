"""Fig. 7 (quadratic fits and curvature) and Fig. 8 (spectra), drawn from ``nonlinearities.pt``."""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec

from .analysis import hermite_bessel_basis, null_band, quadratic_design, sign_test, tie_counts, ties_text
from .figures import draw_function, plt, save, stamp
from .nonlinearities import load_records, shaped

KIND_STYLE = {"learned": ("k", "learned"), "start": ("tab:purple", "their session-I starts"),
              "xavier-init": ("tab:red", "Xavier init"),
              "xavier-trained": ("tab:orange", "Xavier init, after session II")}


def _settings(records: list[dict]) -> list[tuple[str, str]]:
    return sorted({(r["dataset"], r["arch"]) for r in records})


def _select(records, kind, n_args, setting=None):
    return sorted((r for r in records if r["kind"] == kind and r["n_args"] == n_args
                   and (setting is None or (r["dataset"], r["arch"]) == setting)), key=lambda r: r["seed"])


def _points(axis: np.ndarray) -> np.ndarray:
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)


def densest_slice(mask: np.ndarray) -> int:
    """The x3 index whose slice holds most of the 3-arg input region (the grid's middle can miss it)."""
    return int(mask.sum(axis=(0, 1)).argmax())


def _label(ax, text: str) -> None:
    ax.annotate(text, (0, 1.04), xycoords="axes fraction", fontsize=7, fontweight="bold")


def _ecdf(ax, records: list[dict], label: str, **style) -> None:
    """The empirical CDF of ``records``' normalised curvatures, rising from 0 at the smallest."""
    values = np.sort([r["curvature_normalised"] for r in records])
    ax.step(np.r_[values[:1], values], np.arange(len(values) + 1) / len(values), where="post",
            label=f"{label} (n={len(values)})", **style)


def _curvature_panels(ax_cdf, ax_frac, records: list[dict], settings: list[tuple[str, str]]) -> None:
    for j, setting in enumerate(settings):
        group = _select(records, "learned", 2, setting)
        _ecdf(ax_cdf, group, f"{setting[0]} {setting[1].upper()}")
        test = sign_test(r["curvature_sign"] for r in group)
        lo, hi = null_band(test["n"])
        ax_frac.fill_between([j - 0.4, j + 0.4], lo, hi, color="0.85", lw=0)
        yerr = [[test["fraction"] - test["ci_low"]], [test["ci_high"] - test["fraction"]]]
        ax_frac.errorbar(j, test["fraction"], yerr=yerr, fmt="o", color="k", capsize=3)
        count = " ".join(filter(None, (f"{test['k']}/{test['n']}", ties_text(tie_counts(group)))))
        ax_frac.annotate(f"{count}\np2={test['p_two_sided']:.2g}", (j, 1.02), ha="center", fontsize=6)
    # where the same nets stood before session II, so that a fraction inherited from session I shows as such
    starts = [(j, sign_test(r["curvature_sign"] for r in _select(records, "start", 2, setting)))
              for j, setting in enumerate(settings)]
    if shown := [(j + 0.2, test["fraction"]) for j, test in starts if test["n"]]:
        ax_frac.plot(*zip(*shown), "o", mfc="none", color=KIND_STYLE["start"][0], ms=5, ls="none",
                     label="their session-I starts")
    for kind, ls in (("start", ":"), ("xavier-init", "--")):
        if group := _select(records, kind, 2):
            _ecdf(ax_cdf, group, KIND_STYLE[kind][1], color=KIND_STYLE[kind][0], ls=ls)
    ax_cdf.axvline(0, color="0.6", lw=0.6)
    ax_cdf.set_xlabel("normalised curvature det A / tr A²\n(< 0: XOR-like)")
    ax_cdf.set_ylabel("CDF")
    ax_cdf.legend(fontsize=6, loc="upper left")
    ax_frac.axhline(0.5, color="0.6", lw=0.6)
    ax_frac.set_xticks(range(len(settings)), [f"{d}\n{a.upper()}" for d, a in settings], fontsize=7)
    ax_frac.set_ylim(0, 1.15)
    ax_frac.set_ylabel("fraction negative curvature\n(95% CI; grey: binomial null 95%)")
    if ax_frac.get_legend_handles_labels()[0]:
        ax_frac.legend(fontsize=6, loc="lower right")


def fig7(args) -> None:
    """(a-d) learned functions beside their best-fit quadratics, (e) Xavier inits, (f) CDF, (g) fraction; f and g
    also show the learned nets' session-I starts where the records hold them."""
    data = load_records(args.analysis)
    records, settings = data["records"], _settings(data["records"])
    n_ex = args.examples
    # at least 7 in wide: with one setting, panels f and g would be too narrow for their labels
    fig = plt.figure(figsize=(max(2.2 * 2 * len(settings), 7), 1.9 * (n_ex + 1) + 3.2))
    gs = GridSpec(n_ex + 2, 2 * len(settings), figure=fig, height_ratios=[1] * (n_ex + 1) + [1.7])
    for j, setting in enumerate(settings):
        for i, r in enumerate(_select(records, "learned", 2, setting)[:n_ex]):
            fit = (quadratic_design(_points(r["axis"]).reshape(-1, 2)) @ r["coef"]).reshape(r["values"].shape)
            for c, values in enumerate((r["values"], fit)):
                ax = fig.add_subplot(gs[i, 2 * j + c])
                draw_function(ax, values, r["axis"], r["mask"])
                if i == 0:
                    title = f"{'abcd'[j % 4]}  {setting[0]} {setting[1].upper()}"
                    _label(ax, title if c == 0 else "best-fit quadratic")
                caption = f"seed {r['seed']}, R²={r['r2']:.2f}" if c == 1 else f"κ={r['curvature_normalised']:+.2f}"
                ax.set_xlabel(caption, fontsize=6)
    # two per setting, so the row does not show one setting's seeds only
    xavier = [r for setting in settings for r in _select(records, "xavier-init", 2, setting)[:2]]
    for j, r in enumerate(xavier):
        ax = fig.add_subplot(gs[n_ex, j])
        draw_function(ax, r["values"], r["axis"], r["mask"])
        ax.set_xlabel(f"{r['dataset']} {r['arch']} s{r['seed']}", fontsize=6)
        if j == 0:
            _label(ax, "e  Xavier-initialised inner nets")
    half = len(settings)
    ax_cdf, ax_frac = fig.add_subplot(gs[n_ex + 1, :half]), fig.add_subplot(gs[n_ex + 1, half:])
    _curvature_panels(ax_cdf, ax_frac, records, settings)
    _label(ax_cdf, "f  curvature of the best-fit quadratics")
    _label(ax_frac, "g  fraction with negative curvature")
    fig.tight_layout()
    stamp(fig, data["scale"], {r["data_note"] for r in records})
    save(fig, args.out)


def _spectrum_panel(ax, records: list[dict], n_args: int) -> None:
    for kind, (color, label) in KIND_STYLE.items():
        group = shaped(_select(records, kind, n_args))
        if not group:
            continue
        frac = np.stack([r["spectrum_fraction"][1:] for r in group])
        ls = np.arange(1, frac.shape[1] + 1)
        mean = frac.mean(0)
        sd = frac.std(0, ddof=1) if len(group) > 1 else np.zeros_like(mean)
        ax.plot(ls, mean, "o-", color=color, ms=3, label=f"{label} (n={len(group)})")
        ax.fill_between(ls, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
    ax.set_xlabel("order l")
    ax.legend(fontsize=6)


def _basis_strip(fig, anchor_ax, l_max: int) -> None:
    """Example Hermite-Bessel functions (m = l) under the 2-arg spectrum's axis."""
    axis = np.linspace(-3, 3, 61)
    basis, labels = hermite_bessel_basis(_points(axis), l_max)
    box, height = anchor_ax.get_position(), fig.get_figheight()
    width = box.width / l_max
    for l in range(1, l_max + 1):
        ax = fig.add_axes([box.x0 + (l - 1) * width + width * 0.2, box.y0 - 1.0 / height, width * 0.6, 0.48 / height])
        draw_function(ax, basis[..., labels.index((l, l))], axis)


def fig8(args) -> None:
    """Learned 2-arg and 3-arg examples, then their power spectra against Xavier-initialised nets; a run without
    3-arg nets gets neither the 3-arg row nor its spectrum panel."""
    data = load_records(args.analysis)
    records, settings = data["records"], _settings(data["records"])
    arities = [n for n in (2, 3) if _select(records, "learned", n)]
    letters = iter("abcd")
    cols = max(2, len(settings))
    fig = plt.figure(figsize=(2.2 * cols + 1, 2.26 * (len(arities) + 2.2)))
    gs = GridSpec(len(arities) + 1, cols, figure=fig, height_ratios=[1] * len(arities) + [2.2], hspace=0.3)
    for row, n_args in enumerate(arities):
        letter = next(letters)
        for j, setting in enumerate(settings):
            group = _select(records, "learned", n_args, setting)
            if not group:
                continue
            r, ax = group[0], fig.add_subplot(gs[row, j])
            name = f"{setting[0]} {setting[1].upper()}"
            if n_args == 2:
                draw_function(ax, r["values"], r["axis"], r["mask"])
                ax.set_xlabel(name, fontsize=6)
            else:
                mid = densest_slice(r["mask"])
                draw_function(ax, r["values"][:, :, mid], r["axis"], r["mask"][:, :, mid])
                ax.set_xlabel(f"{name} (x3 ≈ {r['axis'][mid]:.2f})", fontsize=6)
            if j == 0:
                _label(ax, f"{letter}  {n_args}-arg learned" + (", slice" if n_args == 3 else ""))
    spans = [slice(None)] if len(arities) == 1 else [slice(None, cols // 2), slice(cols // 2, None)]
    spectra = [fig.add_subplot(gs[-1, span]) for span in spans]
    for ax, n_args in zip(spectra, arities):
        _spectrum_panel(ax, records, n_args)
        _label(ax, f"{next(letters)}  {n_args}-arg spectra ({'Hermite-Bessel' if n_args == 2 else 'solid harmonics'})")
    spectra[0].set_ylabel("share of power at l ≥ 1 (mean ± SD)")  # a second panel beside it shares it
    fig.subplots_adjust(bottom=1.5 / fig.get_figheight())
    if 2 in arities:
        _basis_strip(fig, spectra[0], len(records[0]["spectrum"]) - 1)
    stamp(fig, data["scale"], {r["data_note"] for r in records})
    save(fig, args.out)
