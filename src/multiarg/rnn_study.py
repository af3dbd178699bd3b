"""The recurrence experiment: sequential MNIST with :class:`~multiarg.recurrent.RecurrentNet`, 2-arg units taking
(feedforward, recurrent) drive against ReLU, tanh, learned 1-arg and the adaptive family, parameter-matched
to the 2-arg network; and the curvature of the learned 2-arg function between the two pathways.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import data
from .activations import load_inner
from .analysis import sign_test, tie_counts, ties_text
from .inputs import histogram_inputs
from .io import file_identity, load_torch, save_torch, write_json
from .nonlinearities import AnalysisConfig, analyse_function
from .recurrent import ACTIVATIONS, SEQUENCES, RecurrentNet, matched_hidden
from .runtime import derive_seed, resolve_device
from .tables import mean_sd, write_table
from .train import TrainConfig, fit_run, read_metrics, write_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RNNConfig:
    activation: str
    hidden: int = 64            # units of the reference network; the others are matched to its parameter count
    sequence: str = "rows"      # rows: 28 steps of 28 pixels; pixels: 784 steps of one
    reference: str = "arg2"
    inner_hidden: int = 64
    inner_depth: int = 2

    def __post_init__(self):
        if self.activation not in ACTIVATIONS or self.reference not in ACTIVATIONS:
            raise ValueError(f"recurrent activations are {ACTIVATIONS}, got {self.activation!r}/{self.reference!r}")
        if self.sequence not in SEQUENCES:
            raise ValueError(f"sequence must be one of {tuple(SEQUENCES)}, got {self.sequence!r}")

    def build(self, mean=(0.0,), std=(1.0,)) -> RecurrentNet:
        """The network of ``activation``, its hidden size matched to the reference's parameter count."""
        inner = (self.inner_hidden, self.inner_depth)
        hidden = self.hidden
        if self.activation != self.reference:
            hidden = matched_hidden(RecurrentNet(self.reference, self.hidden, 10, self.sequence, *inner),
                                    self.activation, *inner)
        return RecurrentNet(self.activation, hidden, 10, self.sequence, *inner, mean=mean, std=std)


def _analyse(inner, hist: dict, cfg: AnalysisConfig) -> dict:
    r = analyse_function(inner, hist, cfg)
    return {k: r[k] for k in ("coef", "r2", "curvature", "curvature_sign", "curvature_tie", "curvature_normalised",
                              "values", "mask", "axis")}


def train_rnn(cfg: RNNConfig, train_cfg: TrainConfig, *, data_path: Path, out_dir: Path, data_split: dict,
              init_path: Path | None = None, device: str = "auto", analysis: AnalysisConfig = AnalysisConfig(),
              bins: int = 128, extent: float = 6.0, stop_after: int | None = None) -> dict:
    """Train one recurrent network (resumable) and write ``model.pt``, ``metrics.csv`` and ``summary.json``.

    A learned activation starts from the session-I inner net ``init_path`` and is trained jointly, as in
    session II. For 2-arg units the (feedforward, recurrent) inputs over the test set are histogrammed and the
    learned function, and the initial one over the same inputs, get the quadratic fit and curvature of Fig. 7.
    Returns the summary, or ``{}`` when ``stop_after`` interrupted training.
    """
    prepared = data.load_prepared(data_path)
    if tuple(prepared["train_x"].shape[1:]) != (1, 28, 28):
        raise ValueError(f"sequential MNIST needs 1 x 28 x 28 images; {data_path} has {prepared['train_x'].shape}")
    splits = data.split(prepared, **data_split)
    torch.manual_seed(derive_seed(train_cfg.seed, "rnn-init"))
    model = cfg.build(prepared["mean"], prepared["std"])
    initial = None
    if cfg.activation.startswith("arg"):
        if init_path is None:
            raise ValueError(f"{cfg.activation} needs its session-I inner net (init_path)")
        initial = load_inner(load_torch(init_path)).eval()
        model.inner.load_state_dict(initial.state_dict())
    identity = {"rnn": asdict(cfg), "train": asdict(train_cfg), "split": data_split, "init": file_identity(init_path),
                "data": data.manifest_sha(data_path)}
    dev = resolve_device(device)
    result = fit_run(model, splits, train_cfg, out_dir, identity, device=dev, stop_after=stop_after,
                     desc=f"rnn {cfg.activation}")
    if not result["finished"]:
        return {}
    model.load_state_dict(result["state"])
    best = result["history"][result["best_epoch"] - 1] if result["best_epoch"] else result["history"][-1]
    summary = {**asdict(cfg), "seed": train_cfg.seed, "units": model.hidden,
               "params": sum(p.numel() for p in model.parameters()), "best_epoch": result["best_epoch"],
               "test_acc": best["test_acc"], "val_acc": best["val_acc"],
               "seconds_per_epoch": float(np.mean([r["seconds"] for r in result["history"]])),
               "data_note": prepared["note"]}
    record = {"rnn_config": asdict(cfg), "units": model.hidden, "state_dict": result["state"],
              "train_config": asdict(train_cfg), "best_epoch": result["best_epoch"], "arithmetic": result["arithmetic"]}
    if cfg.activation == "arg2":
        x, _ = data.test_subset(prepared, data_split["test_limit"], data_split["split_seed"])
        hist = histogram_inputs(model, x, bins=bins, extent=extent, batch_size=train_cfg.eval_batch_size,
                                device=dev)
        model.cpu()
        learned_fn, initial_fn = _analyse(model.inner.eval(), hist, analysis), _analyse(initial, hist, analysis)
        summary.update({k: learned_fn[k] for k in ("r2", "curvature", "curvature_sign", "curvature_tie",
                                                   "curvature_normalised")},
                       initial_curvature=initial_fn["curvature"], initial_curvature_sign=initial_fn["curvature_sign"],
                       initial_curvature_tie=initial_fn["curvature_tie"],
                       initial_curvature_normalised=initial_fn["curvature_normalised"],
                       input_mean=hist["mean"].tolist())
        record["analysis"] = {"learned": _tensors(learned_fn), "initial": _tensors(initial_fn)}
    write_metrics(result["history"], out_dir / "metrics.csv")
    save_torch(record, out_dir / "model.pt")
    write_json(summary, out_dir / "summary.json")
    (out_dir / "checkpoint.pt").unlink(missing_ok=True)
    return summary


def _tensors(record: dict) -> dict:
    # weights_only loading admits tensors but not numpy arrays
    return {k: torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in record.items()}


def _mean_sd(values: list[float], scale: float = 1.0, digits: int = 2) -> tuple[str, str]:
    mean, sd = mean_sd([scale * v for v in values])
    return f"{mean:.{digits}f}", f"{sd:.{digits}f}" if len(values) > 1 else "n/a"


def _sign_test(runs: list[dict], prefix: str = "") -> tuple[dict, str]:
    """:func:`sign_test` of the runs' ``{prefix}curvature_sign``, and its cell: "k/n" negative of the fits not tied,
    the ties (flat fits and ridges, left out of n) named."""
    test = sign_test(r[f"{prefix}curvature_sign"] for r in runs)
    ties = ties_text(tie_counts(runs, prefix))
    return test, f"{test['k']}/{test['n']}" + (f" ({ties})" if ties else "")


def rnn_rows(summaries: list[dict]) -> list[dict]:
    """Per activation: matched size, test accuracy and time with seed spread; for 2-arg, the curvature signs."""
    groups = defaultdict(list)
    for s in summaries:
        groups[s["activation"]].append(s)
    rows = []
    for act in [a for a in ACTIVATIONS if a in groups]:
        runs = groups[act]
        acc, acc_sd = _mean_sd([r["test_acc"] for r in runs], 100)
        sec, sec_sd = _mean_sd([r["seconds_per_epoch"] for r in runs])
        row = {"activation": act, "units": runs[0]["units"], "params": runs[0]["params"], "seeds": len(runs),
               "test_acc": acc, "test_acc_sd": acc_sd, "seconds_per_epoch": sec, "seconds_sd": sec_sd,
               "k_negative": "", "curvature_normalised": "", "initial_k_negative": "", "p_two_sided": "",
               "median_r2": ""}
        if "curvature" in runs[0]:
            (test, cell), (_, initial) = _sign_test(runs), _sign_test(runs, "initial_")
            curv, curv_sd = _mean_sd([r["curvature_normalised"] for r in runs], digits=3)
            row.update(k_negative=cell, curvature_normalised=f"{curv} ± {curv_sd}", initial_k_negative=initial,
                       p_two_sided=f"{test['p_two_sided']:.3g}",
                       median_r2=f"{np.median([r['r2'] for r in runs]):.3f}")
        rows.append(row)
    return rows


def write_rnn_table(paths: list[str], out: str, scale: str, mass: float) -> list[dict]:
    """The recurrent networks' table (:func:`rnn_rows`) of the runs' ``summary.json`` files; ``mass``: the share of
    inputs the curvature fits were restricted to (``analysis.mass``)."""
    summaries = [json.loads(Path(p).read_text()) for p in paths]
    rows = rnn_rows(summaries)
    first, curved = summaries[0], sum("curvature" in s for s in summaries)
    notes = [f"Sequential MNIST, {first['sequence']} as time steps; every network is parameter-matched to the "
             f"{first['reference']} network with {first['hidden']} units (units = hidden size found). test_acc: "
             "test accuracy (%) at the best-validation epoch, mean and SD over seeds; seconds_per_epoch includes "
             "evaluation.",
             "2-arg units take (feedforward drive, recurrent drive) as their two arguments. k_negative: learned "
             "functions with negative curvature c1 c2 - c3^2/4 of the best-fit quadratic over the "
             f"{100 * mass:g}% input region (negative = XOR-like saddle, the gating shape), out of the fits that "
             "are not tied (a flat fit, of a constant or affine function, whose curvature sign is rounding noise, "
             "and a ridge, |det A / tr A²| under analysis.ridge_tolerance, are ties, named apart and left out of "
             "n); initial_k_negative: the "
             "same for the session-I functions they started from, over the same inputs; p_two_sided: exact "
             "binomial test against 1/2 (with "
             f"n functions it cannot fall below 2^(1-n), here {2.0 ** (1 - max(curved, 1)):.3g}: n < 6 can never "
             "reach p < 0.05); curvature_normalised: det A / tr(A^2) in [-1/2, 1/2], "
             "mean ± SD.",
             first["data_note"]]
    write_table(rows, out, f"Recurrent networks on sequential MNIST ({scale})", notes=[n for n in notes if n])
    return rows


def fig_rnn(args) -> None:
    """(a) test accuracy per epoch for every recurrent activation; (b) learned 2-arg functions of
    (feedforward, recurrent) drive with their curvature; (c) normalised curvature before and after training."""
    from matplotlib.ticker import MaxNLocator

    from .figures import COLORS, LABELS, draw_function, mean_band, plt, save, stamp

    colors = {**COLORS, "tanh": "tab:gray"}
    summaries = [{**json.loads(Path(p).read_text()), "folder": Path(p).parent} for p in args.summaries]
    examples = [s for s in summaries if s["activation"] == "arg2"][:args.examples]
    fig = plt.figure(figsize=(4 + 2.2 * max(len(examples), 1) + 3, 3.4))
    grid = fig.add_gridspec(1, len(examples) + 2, width_ratios=[2] + [1] * len(examples) + [1.4])
    ax = fig.add_subplot(grid[0])
    curves = defaultdict(list)
    for s in summaries:
        curves[s["activation"]].append(100 * read_metrics(s["folder"] / "metrics.csv")["test_acc"])
    for act in [a for a in ACTIVATIONS if a in curves]:
        mean_band(ax, curves[act], colors[act], f"{LABELS.get(act, act)} (n={len(curves[act])})")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="a  sequential MNIST")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=6)
    for i, s in enumerate(examples):
        a = load_torch(s["folder"] / "model.pt")["analysis"]["learned"]
        axf = fig.add_subplot(grid[1 + i])
        draw_function(axf, a["values"].numpy(), a["axis"].numpy(), a["mask"].numpy())
        axf.set_title(f"{'b' if i == 0 else ''}  seed {s['seed']}: curv. {s['curvature_normalised']:+.2f}",
                      fontsize=8)
        axf.set_xlabel("feedforward drive", fontsize=7)
        axf.set_ylabel("recurrent drive", fontsize=7)
    axc = fig.add_subplot(grid[-1])
    for s in (s for s in summaries if s["activation"] == "arg2"):
        axc.plot([0, 1], [s["initial_curvature_normalised"], s["curvature_normalised"]], "o-", color=colors["arg2"],
                 lw=0.8, ms=3)
    axc.axhline(0, color="0.5", lw=0.6)
    axc.set(xticks=[0, 1], xlim=(-0.3, 1.3), ylim=(-0.55, 0.55), ylabel="normalised curvature",
            title="c  2-arg curvature")
    axc.set_xticklabels(["session I", "trained"], fontsize=7)
    fig.tight_layout()
    stamp(fig, args.scale, {summaries[0]["data_note"]})
    save(fig, args.out)
