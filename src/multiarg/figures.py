"""The paper's figures, drawn from the pipeline's real outputs and stamped with their scale."""
from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import TwoSlopeNorm, to_rgb  # noqa: E402

from .activations import InnerNet, inner_from_state  # noqa: E402
from .inputs import centers, mass_region  # noqa: E402
from .io import atomic_path, load_torch  # noqa: E402
from .maturation import shares_by_epoch  # noqa: E402
from .nonlinearities import load_records  # noqa: E402
from .paths import parse_run  # noqa: E402
from .train import read_metrics  # noqa: E402

_DESIGNS = {"arg2": ("tab:red", "2-arg"), "arg1": ("tab:green", "1-arg"), "relu": ("tab:blue", "ReLU"),
            "arg3": ("tab:purple", "3-arg"), "gamma": ("tab:olive", "adaptive γ"), "dac": ("tab:brown", "DAC")}
# A FLOP-matched baseline (relu-flops) follows its design in a lighter shade of its colour, one at the reference's
# widths (relu-width) in a darker one.
_VARIANTS = {"": (lambda x: x, ""), "-flops": (lambda x: 1 - 0.5 * (1 - x), ", FLOP-matched"),
             "-width": (lambda x: 0.55 * x, ", same widths")}
COLORS = {a + v: tuple(map(shade, to_rgb(c))) for a, (c, _) in _DESIGNS.items() for v, (shade, _) in _VARIANTS.items()}
LABELS = {a + v: name + label for a, (_, name) in _DESIGNS.items() for v, (_, label) in _VARIANTS.items()}
LABELS["arg2-xavier"] = "2-arg (Xavier init)"


@torch.no_grad()
def evaluate_grid(inner: InnerNet, axis: np.ndarray) -> np.ndarray:
    """``f(x1, x2)`` on the grid ``axis x axis``, indexed ``[i1, i2]``."""
    a = torch.as_tensor(axis, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(a, a, indexing="ij"), -1)
    return inner(grid).numpy()


def cell_extent(axis: np.ndarray) -> tuple[float, float, float, float]:
    """``imshow`` extent of square cells centred on ``axis`` (evenly spaced), so pixels sit where contours
    drawn on the same centres do."""
    half = (axis[1] - axis[0]) / 2
    return (axis[0] - half, axis[-1] + half) * 2


def mask_reach(axis: np.ndarray, mask: np.ndarray) -> float:
    """The largest |coordinate| of a cell of the 2-D ``mask`` on ``axis``: a square view centred at 0 that holds it."""
    rows, cols = np.nonzero(mask)
    return float(max(abs(axis[rows.min()]), abs(axis[rows.max()]), abs(axis[cols.min()]), abs(axis[cols.max()])))


def draw_function(ax, values: np.ndarray, axis: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Diverging map (red negative, blue positive, white at zero), masked outside ``mask``."""
    shown = np.ma.masked_where(~mask, values) if mask is not None else values
    lim = float(np.abs(values[mask] if mask is not None and mask.any() else values).max()) or 1.0
    ax.imshow(shown.T, origin="lower", extent=cell_extent(axis), cmap="RdBu", norm=TwoSlopeNorm(0, -lim, lim))
    if mask is not None and mask.any():
        rows, cols = np.nonzero(mask)
        half = (axis[1] - axis[0]) / 2
        ax.set_xlim(axis[rows.min()] - half, axis[rows.max()] + half)
        ax.set_ylim(axis[cols.min()] - half, axis[cols.max()] + half)
    ax.set_xticks([])
    ax.set_yticks([])


def stamp(fig, scale: str, notes: set[str], fontsize: float = 7) -> None:
    """Write the run's scale and data notes under everything drawn on ``fig``; call it after the layout. Placed
    from the drawn extent rather than at a fixed height, so it can neither overlap an axis label nor need a margin
    guessed per figure; the saved (tight) bounds then take it in."""
    text = f"scale: {scale}" + ("".join(f" | {n}" for n in sorted(notes) if n))
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    chars = max(40, int(drawn.width * 72 / (0.55 * fontsize)))  # DejaVu Sans: a character is about 0.55 em wide
    fig.text((drawn.x0 + drawn.x1) / 2 / fig.get_figwidth(), (drawn.y0 - 0.05) / fig.get_figheight(),
             textwrap.fill(text, chars), ha="center", va="top", fontsize=fontsize, color="0.3")


def row_title(ax, text: str):
    """A bold title for the row of panels ``ax`` is in, above its axes title, from the figure's left edge (the
    whole width is its room, however narrow the first panel)."""
    return ax.annotate(text, (0, 1), xycoords=("figure fraction", "axes fraction"), xytext=(4, 20),
                       textcoords="offset points", va="bottom", fontsize=8, fontweight="bold")


def layout_under_row_titles(fig, titles: list) -> None:
    """``tight_layout`` without ``titles``, which span the columns and would otherwise be fitted into the first
    column by spreading the columns apart (``h_pad`` makes their room); then back in for the saved bounds."""
    for title in titles:
        title.set_in_layout(False)
    fig.tight_layout(h_pad=4)
    for title in titles:
        title.set_in_layout(True)


def legend_under(ax, handles: list, x: float = 0.5, **kwargs) -> None:
    """A frameless legend of ``handles`` under ``ax``'s x label, wherever the (finished) layout put that label;
    ``x`` in axes fractions, where ``loc`` (default upper center) anchors it."""
    ax.figure.canvas.draw()
    below = ax.transAxes.inverted().transform((0, ax.xaxis.label.get_window_extent().y0))[1]
    ax.legend(handles=handles, bbox_to_anchor=(x, below), frameon=False, **{"loc": "upper center", "fontsize": 7,
                                                                           **kwargs})


def save(fig, out: str | Path) -> None:
    """Write ``out`` (PDF) and a PNG beside it, each atomically."""
    out = Path(out)
    # no creation date in the PDF, so that drawing the same figure again gives the same bytes
    for path, fmt, metadata in ((out, "pdf", {"CreationDate": None}), (out.with_suffix(".png"), "png", {})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def _columns(paths: list[str]) -> list[tuple[str, str]]:
    return sorted({(parse_run(p)["dataset"], parse_run(p)["arch"]) for p in paths})


def _by_run(paths: list[str]) -> dict[tuple, str]:
    return {tuple(parse_run(p)[k] for k in ("dataset", "arch", "activation", "seed", "session")): p for p in paths}


def mean_band(ax, runs: list[np.ndarray], color: str, label: str | None, offset: int = 0) -> None:
    """Mean +- sample SD over ``runs`` (of unequal length: each epoch averages the runs still going), epochs
    numbered from ``offset + 1``; the band only where two or more runs are going, as one has no SD."""
    acc = np.full((len(runs), max(len(r) for r in runs)), np.nan)
    for i, r in enumerate(runs):
        acc[i, :len(r)] = r
    mean = np.nanmean(acc, 0)
    x = np.arange(1, acc.shape[1] + 1) + offset
    ax.plot(x, mean, color=color, lw=1, label=label, marker="o" if len(x) == 1 else None, ms=3)  # a 1-epoch run
    spread = np.isfinite(acc).sum(0) > 1
    if spread.any():
        sd = np.nanstd(acc[:, spread], 0, ddof=1)
        ax.fill_between(x[spread], mean[spread] - sd, mean[spread] + sd, color=color, alpha=0.25, lw=0)


def _accuracy_panel(ax, metrics: list[str], dataset: str, arch: str) -> None:
    curves: dict[tuple[str, int], list[np.ndarray]] = defaultdict(list)
    for path in metrics:
        info = parse_run(path)
        if (info["dataset"], info["arch"]) == (dataset, arch) and info["activation"] in COLORS:
            curves[info["activation"], info["session"]].append(read_metrics(path)["test_acc"])
    offset = max((len(c) for (_, s), cs in curves.items() if s == 2 for c in cs), default=0)
    for (act, session), runs in sorted(curves.items()):
        mean_band(ax, [100 * r for r in runs], COLORS[act], f"{LABELS[act]} (n={len(runs)})" if session == 2 else None,
                  offset if session == 3 else 0)
    ax.axvline(offset + 0.5, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("epoch (session II | session III)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=6)


def fig4(args) -> None:
    """(a) input density, (b) initial and (c) learned 2-arg nonlinearities, (d) test accuracy."""
    inputs, models = _by_run(args.inputs), _by_run(args.models)
    inits = {int(load_torch(p)["seed"]): p for p in args.inits}
    cols = _columns(args.models)
    seeds = sorted({k[3] for k in models})
    # at least 4.5 in wide: a one-column figure must still hold the widest row title
    fig, axes = plt.subplots(4, len(cols), figsize=(max(3 * len(cols), 4.5), 11), squeeze=False)
    notes = set()
    for j, (dataset, arch) in enumerate(cols):
        seed = seeds[j % len(seeds)]
        record = load_torch(models[dataset, arch, "arg2", seed, 2])
        notes.add(record["data_note"])
        hist = load_torch(inputs[dataset, arch, "arg2", seed, 2])
        axis = centers(hist["bins"], hist["extent"]).numpy()
        share = hist["counts"].numpy() / hist["total"]  # of all inputs, per histogram cell (not per unit area)
        mask = mass_region(hist["counts"], hist["total"], args.mass).numpy()
        ax = axes[0, j]
        ax.imshow(np.log10(share.T + 1e-9), origin="lower", cmap="magma", vmin=-7, extent=cell_extent(axis))
        ax.contour(axis, axis, mask.T.astype(float), levels=[0.5], colors="c", linewidths=0.6)
        ax.set_title(f"{dataset} {arch.upper()} (seed {seed})", fontsize=8)
        init = load_torch(inits[seed])
        grid = np.linspace(-init["half_width"], init["half_width"], 101)
        draw_function(axes[1, j], evaluate_grid(inner_from_state(init["state_dict"]), grid), grid)
        axes[1, j].contour(axis, axis, mask.T.astype(float), levels=[0.5], colors="k", linewidths=0.5)
        # wide enough for both the session-I square and the inputs the trained net then received
        reach = max(init["half_width"], mask_reach(axis, mask))
        axes[1, j].set_xlim(-reach, reach)
        axes[1, j].set_ylim(-reach, reach)
        from .sessions import load_model

        inner = load_model(models[dataset, arch, "arg2", seed, 2])[0].inner
        draw_function(axes[2, j], evaluate_grid(inner, axis), axis, mask)
        _accuracy_panel(axes[3, j], args.metrics, dataset, arch)
    titles = []
    region = f"{100 * args.mass:g}% region"
    for row, label in enumerate((f"a  input distribution (log10 share per cell; cyan: {region})",
                                 f"b  pretrained random initial nonlinearity (black: {region} of c)",
                                 f"c  learned 2-arg nonlinearity ({region} of its inputs)",
                                 "d  test accuracy, mean ± 1 SD over seeds")):
        titles.append(row_title(axes[row, 0], label))
    layout_under_row_titles(fig, titles)
    stamp(fig, args.scale, notes)
    save(fig, args.out)


def _maturity_panel(ax, records: list[dict], threshold: float, horizon: int) -> None:
    """Median and interquartile range, over the runs of each setting, of the share of the final function's
    variance that each epoch's snapshot holds (a run past its best epoch counts as 1, as in the table)."""
    settings = sorted({(r["kind"], r["dataset"], r["arch"]) for r in records})
    palette = dict(zip(sorted({s[1:] for s in settings}), ("tab:red", "tab:blue", "tab:green", "tab:orange")))
    for kind, dataset, arch in settings:
        shares = shares_by_epoch([r for r in records if (r["kind"], r["dataset"], r["arch"]) == (kind, dataset, arch)])
        if not len(shares):
            continue
        epochs = range(shares.shape[1])
        q1, median, q3 = np.percentile(shares, [25, 50, 75], axis=0)
        style = {"color": palette[dataset, arch], "ls": "-" if kind == "learned" else "--"}
        name = LABELS["arg2" if kind == "learned" else "arg2-xavier"]
        ax.plot(epochs, median, label=f"{dataset} {arch.upper()}, {name} (n={len(shares)})", **style)
        ax.fill_between(epochs, q1, q3, color=style["color"], alpha=0.12 if kind == "learned" else 0.06, lw=0)
    ax.axhline(threshold, color="0.4", lw=0.7, ls=":")
    ax.axvline(horizon, color="0.4", lw=0.7, ls=":")
    ax.set_xlabel("session-II epoch (0: the session-I net)", fontsize=8)
    ax.set_ylabel("share of the final\nfunction's variance", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=6, loc="lower right", ncol=2)


def fig5(args) -> None:
    """Snapshots of the 2-arg nonlinearity across session-II epochs, one row per initialisation, and under them how
    soon every analysed run took its final shape (median and quartiles per setting)."""
    rows = sorted(args.snapshots, key=lambda p: parse_run(p)["activation"])
    inputs = {parse_run(p)["activation"]: p for p in args.inputs}
    fig, axes = plt.subplots(len(rows) + 1, len(args.epochs) + 1,
                             figsize=(2 * (len(args.epochs) + 1), 2.2 * (len(rows) + 1)), squeeze=False)
    notes, titles = set(), []
    for i, path in enumerate(rows):
        info = parse_run(path)
        snaps = load_torch(path)
        hist = load_torch(inputs[info["activation"]])
        notes.add(load_torch(hist["model"])["data_note"] if Path(hist["model"]).exists() else "")
        axis = centers(hist["bins"], hist["extent"]).numpy()
        mask = mass_region(hist["counts"], hist["total"], args.mass).numpy()
        lo = mask_reach(axis, mask)
        grid = np.linspace(-lo, lo, 81)
        epochs = list(snaps["epochs"])
        shown = [e for e in args.epochs if e in epochs and e != epochs[-1]] + [epochs[-1]]
        for j, ax in enumerate(axes[i]):
            ax.axis("off")
            if j >= len(shown):
                continue
            ax.axis("on")
            draw_function(ax, evaluate_grid(inner_from_state(snaps["snapshots"][epochs.index(shown[j])]), grid), grid)
            ax.contour(axis, axis, mask.T.astype(float), levels=[0.5], colors="k", linewidths=0.5)
            ax.set_xlim(-lo, lo)
            ax.set_ylim(-lo, lo)
            # the last epoch trained, which early stopping leaves after the best one that model.pt keeps
            ax.set_title(f"epoch {shown[j]}" + (" (last)" if j == len(shown) - 1 else ""), fontsize=8)
        axes[i, 0].set_ylabel(LABELS.get(info["activation"], info["activation"]), fontsize=8)
        titles.append(row_title(axes[i, 0], f"{'ab'[i % 2]}  {LABELS.get(info['activation'])}: {info['dataset']} "
                                            f"{info['arch'].upper()} seed {info['seed']}"))
    grid = axes[-1, 0].get_gridspec()
    for ax in axes[-1]:
        ax.remove()
    wide = fig.add_subplot(grid[-1, :])
    records = [r for r in load_records(args.analysis)["records"] if r["n_args"] == 2 and "maturity_r2" in r]
    _maturity_panel(wide, records, args.maturity_r2, args.maturity_epochs)
    titles.append(row_title(wide, f"{'abc'[len(rows)]}  how soon each run takes its final shape: median and "
                                  f"quartiles over runs; dotted: {args.maturity_r2:g} of the variance, epoch "
                                  f"{args.maturity_epochs} (maturation table)"))
    layout_under_row_titles(fig, titles)
    stamp(fig, args.scale, notes)
    save(fig, args.out)
