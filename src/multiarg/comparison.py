"""Every activation side by side: the paper's models, the related designs (adaptive gamma, DAC) and the
recurrent experiment, ranked per setting on accuracy, learning speed, robustness and corruption error, with
their parameters and training time beside."""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from .io import load_torch, write_json
from .paths import parse_run
from .tables import difference_cells, holm, mean_sd, welch_difference, write_table
from .train import read_metrics

# name, higher is better; ranks are 1 = best within one dataset x architecture
METRICS = {"test_acc": True, "early_acc": True, "robust_acc": True, "mce": False, "params": False,
           "sec_per_epoch": False}
# The mean rank averages what a model achieves, not what it costs: parameters are matched to the 2-arg net, so
# their rank only says how close the width search landed, and time is reported and ranked on its own.
QUALITY = ("test_acc", "early_acc", "robust_acc", "mce")


def finite(values: dict[str, list[float]], metric: str) -> list[float]:
    """A model's per-seed values of ``metric``, or none (an empty list) where it has none or one is not finite (a
    failed evaluation), so that no test or rank reads it."""
    v = values.get(metric) or []
    return v if np.isfinite(v).all() else []


def _best_accuracy(model_paths: list[str]) -> dict[tuple, list[float]]:
    """Test accuracy (%) at each run's best-validation epoch, by (dataset, arch, activation), in seed order: two
    sessions' lists pair up by seed, session III of seed s having retrained on session II's nonlinearity of seed s."""
    out = defaultdict(list)
    for p in sorted(model_paths, key=lambda p: parse_run(p)["seed"]):
        info, best = parse_run(p), load_torch(p)["best_epoch"]
        test_acc = read_metrics(Path(p).parent / "metrics.csv")["test_acc"]
        out[info["dataset"], info["arch"], info["activation"]].append(100 * float(test_acc[best - 1 if best else -1]))
    return out


def _session2(metric_paths: list[str], early_epochs: int) -> dict[tuple, dict[str, list[float]]]:
    """Per session-II run (joint training: every parameter trainable) its mean seconds per epoch, and its mean
    test accuracy (%) over its first ``early_epochs`` epochs: how fast it learns, the paper's Fig. 4d claim."""
    out = defaultdict(lambda: defaultdict(list))
    for p in metric_paths:
        info, metrics = parse_run(p), read_metrics(p)
        key = info["dataset"], info["arch"], info["activation"]
        out[key]["sec_per_epoch"].append(float(metrics["seconds"].mean()))
        out[key]["early_acc"].append(100 * float(metrics["test_acc"][:early_epochs].mean()))
    return out


def _params(param_table: str) -> dict[tuple, int]:
    with open(param_table) as fh:
        return {(r["dataset"], r["arch"], r["activation"]): int(r["params_exact"]) for r in csv.DictReader(fh)}


def collect(models: list[str], metrics: list[str], param_table: str, cifar10c: list[str] = (),
            autoattack: list[str] = (), rnn: list[str] = (), early_epochs: int = 10,
            session2_models: list[str] = ()) -> dict[tuple, dict[str, list[float]]]:
    """Per-seed values of every metric, by (dataset, arch, activation); ``session2_acc`` (from
    ``session2_models``) is not ranked, it pairs with ``test_acc`` for the claims' retraining test."""
    values: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, accs in _best_accuracy(models).items():
        values[key]["test_acc"] = accs
    for key, accs in _best_accuracy(session2_models).items():
        values[key]["session2_acc"] = accs
    for key, run in _session2(metrics, early_epochs).items():
        values[key].update(run)
    for key, count in _params(param_table).items():
        if key in values:
            values[key]["params"] = [count]
    for p in autoattack:
        r = json.loads(Path(p).read_text())
        values[r["dataset"], r["arch"], r["activation"]]["robust_acc"].append(100 * r["robust_accuracy"])
    if cifar10c:
        from .cifar10c import summarise

        for (arch, act), s in summarise(cifar10c).items():
            values["cifar10", arch, act]["mce"] = [100 * v for v in s["mce"]["values"]]
    for p in rnn:
        r = json.loads(Path(p).read_text())
        key = ("mnist", f"rnn-{r['sequence']}", r["activation"])
        values[key]["test_acc"].append(100 * r["test_acc"])
        values[key]["sec_per_epoch"].append(r["seconds_per_epoch"])
        values[key]["params"] = [r["params"]]
    return values


def write_values(values: dict[tuple, dict[str, list[float]]], out: str) -> None:
    """The per-seed values behind the summary, keyed ``dataset/arch/activation``, for tests run on them (claims)."""
    write_json({"/".join(key): {m: [float(x) for x in v] for m, v in metrics.items()}
                for key, metrics in values.items()}, out)


def read_values(path: str) -> dict[tuple, dict[str, list[float]]]:
    return {tuple(key.split("/")): metrics for key, metrics in json.loads(Path(path).read_text()).items()}


def rank_rows(values: dict[tuple, dict[str, list[float]]]) -> list[dict]:
    """One row per (dataset, arch, activation): mean, SD over seeds and rank of each metric, and the mean rank."""
    settings = defaultdict(dict)
    for (dataset, arch, act), v in values.items():
        settings[dataset, arch][act] = {m: mean_sd(v[m]) for m in METRICS if finite(v, m)}
    rows = []
    for (dataset, arch), acts in sorted(settings.items()):
        ranks, versus_best = defaultdict(dict), defaultdict(dict)
        for metric, higher in METRICS.items():
            if metric == "params":
                continue
            means = {a: acts[a][metric][0] * (-1 if higher else 1) for a in acts if metric in acts[a]}
            if len(means) > 1:
                for a, m in means.items():  # ties share the better rank (1, 2, 2, 4)
                    ranks[a][metric] = 1 + sum(other < m for other in means.values())
                best = min(means, key=means.get)
                for a in means:
                    test = welch_difference(values[dataset, arch, a][metric], values[dataset, arch, best][metric])
                    versus_best[a][metric] = f"{test['p']:.3g}" if test and a != best else ""
        # only the quality metrics every ranked model has, so mean ranks compare like with like
        shared = [m for m in QUALITY if all(m in ranks[a] for a in acts)]
        mean_rank = {a: float(np.mean([ranks[a][m] for m in shared])) for a in acts if shared}
        for act, stats in sorted(acts.items(), key=lambda kv: mean_rank.get(kv[0], np.inf)):
            row = {"dataset": dataset, "arch": arch, "activation": act,
                   "seeds": len(values[dataset, arch, act].get("test_acc", []))}
            for metric in METRICS:
                mean, sd = stats.get(metric, (None, None))
                digits = 0 if metric == "params" else 3 if metric == "sec_per_epoch" else 2
                row[metric] = "" if mean is None else f"{mean:.{digits}f}"
                if metric != "params":
                    row[f"{metric}_sd"] = "" if sd is None or np.isnan(sd) else f"{sd:.{digits}f}"
                    row[f"{metric}_rank"] = ranks[act].get(metric, "")
                    row[f"{metric}_p_vs_best"] = versus_best[act].get(metric, "")
            row["mean_rank"] = f"{mean_rank[act]:.2f}" if act in mean_rank else ""
            row["mean_rank_over"] = "+".join(shared)
            rows.append(row)
    return rows


def versus_rows(values: dict[tuple, dict[str, list[float]]], reference: str = "relu") -> list[dict]:
    """Every other design against ``reference`` in its setting, one row per quality metric: the difference of the
    means over seeds, Welch's 95% interval and p, and Holm's adjustment over every comparison of the table, on which
    the verdict rests. The claims set 2-arg against the stronger baseline alone; this is each design's own test."""
    tests = []
    for (dataset, arch, act), v in sorted(values.items()):
        if act == reference:
            continue
        ref = values.get((dataset, arch, reference), {})
        for metric in QUALITY:
            a, r = finite(v, metric), finite(ref, metric)
            if a and r:
                tests.append(((dataset, arch, act, metric, a, r), welch_difference(a, r)))
    adjusted = holm([t["p"] if t else np.nan for _, t in tests])
    rows = []
    for ((dataset, arch, act, metric, a, r), test), q in zip(tests, adjusted):
        better, worse = f"{act} better than {reference}", f"{act} worse than {reference}"
        interval, p, _ = difference_cells(test, better, worse)
        ahead = (better, worse) if METRICS[metric] else (worse, better)
        verdict = difference_cells(test and {**test, "p": q}, *ahead, name="Holm-adjusted Welch")[2]
        rows.append({"dataset": dataset, "arch": arch, "activation": act, "metric": metric, "seeds": len(a),
                     f"{reference}_seeds": len(r), "mean": f"{np.mean(a):.2f}",
                     f"{reference}_mean": f"{np.mean(r):.2f}",
                     "diff": f"{np.mean(a) - np.mean(r):+.2f}", "ci95": interval, "p": p,
                     "p_holm": f"{q:.3g}" if np.isfinite(q) else "", "verdict": verdict})
    return rows


def write_versus(rows: list[dict], out: str, scale: str, reference: str = "relu") -> None:
    name = {"relu": "ReLU"}.get(reference, reference)
    tested = sum(bool(r["p"]) for r in rows)
    notes = [f"Each design minus {name} in the same dataset x arch, per quality metric of the summary (same units: "
             "points of accuracy or of mCE): means over seeds, their difference, Welch's 95% interval and two-sided "
             "p (none with fewer than two seeds a side). better/worse reads the metric's direction (lower mCE is "
             f"better). p_holm: Holm's step-down adjustment over the {tested} comparisons with a p-value, since the "
             "table makes them all at once; the verdict goes by it. The claims table tests 2-arg against the stronger "
             "of ReLU and 1-arg instead, as the paper's claim needs both beaten."]
    write_table(rows, out, f"Every design against {name} ({scale})", notes=notes)


def write_summary(rows: list[dict], out: str, scale: str) -> None:
    notes = ["test_acc: test accuracy (%) of session III (the outer network retrained on the frozen learned "
             "nonlinearity; for the RNN, the one joint training) at the best-validation epoch; robust_acc: Table 1 "
             "robust accuracy (%) after adversarial training; mce: CIFAR-10-C mCE (%) against ReLU; early_acc: mean "
             "session-II test accuracy (%) over the first epochs (summary.early_epochs), how fast a model learns "
             "(the paper's Fig. 4d); params: exact "
             "parameter count (matched to the 2-arg network, a -flops baseline in forward FLOPs instead); "
             "sec_per_epoch: session-II seconds per epoch on the "
             "machine that ran it (jobs running side by side share it, so compare within one run only).",
             "Means and SDs over seeds; ranks within each dataset x arch (1 = best: highest accuracy, lowest mCE, "
             "fastest); parameters are matched, so not ranked. mean_rank averages the ranks of the quality metrics "
             "(accuracy, early accuracy, robust accuracy, mCE) that every model of the setting has "
             "(mean_rank_over), not time. Ranks go by the means; <metric>_p_vs_best is Welch's two-sided p of the "
             "gap to the best model over the seeds (empty with fewer than two seeds): p >= 0.05 means seed noise "
             "could explain the gap."]
    write_table(rows, out, f"Summary: every activation ranked per setting ({scale})", notes=notes)


def fig_compare(args) -> None:
    """Bars per setting and activation: test accuracy, early accuracy, AutoAttack robust accuracy, CIFAR-10-C
    mCE, s/epoch."""
    from .figures import COLORS, LABELS, plt, save, stamp

    colors = {**COLORS, "tanh": "tab:gray"}
    with open(args.summary) as fh:
        rows = list(csv.DictReader(fh))
    panels = [(m, t) for m, t in (("test_acc", "test accuracy (%)"),
                                  ("early_acc", "session-II test accuracy, first epochs (%)"),
                                  ("robust_acc", "robust accuracy (%)"),
                                  ("mce", "CIFAR-10-C mCE (%)"), ("sec_per_epoch", "seconds per epoch"))
              if any(r[m] for r in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    acts = list(dict.fromkeys(a for a in [*colors, *(r["activation"] for r in rows)]
                              if any(r["activation"] == a for r in rows)))
    for ax, (metric, title) in zip(axes[0], panels):
        settings = sorted({(r["dataset"], r["arch"]) for r in rows if r[metric]})
        width = 0.8 / len(acts)
        for i, act in enumerate(acts):
            got = {(r["dataset"], r["arch"]): r for r in rows if r["activation"] == act and r[metric]}
            xs = [j for j, s in enumerate(settings) if s in got]
            mean = [float(got[settings[j]][metric]) for j in xs]
            sd = [float(got[settings[j]][f"{metric}_sd"] or 0) for j in xs]
            ax.bar(np.array(xs) + (i - (len(acts) - 1) / 2) * width, mean, width, yerr=sd, capsize=1.5,
                   color=colors.get(act, "0.5"), label=LABELS.get(act, act))
        ax.set_xticks(range(len(settings)), [f"{d}\n{a}" for d, a in settings], fontsize=7)
        ax.set_title(title, fontsize=9)
        if metric == "sec_per_epoch":
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    stamp(fig, args.scale, {"bars: mean ± SD over seeds"})
    save(fig, args.out)


def _interval(cell: str) -> tuple[float, float] | None:
    """``"[-1.14, -0.46]"`` as a pair of floats; none for an empty cell (fewer than two seeds a side)."""
    return tuple(float(x) for x in cell.strip("[]").split(",")) if cell else None


def forest_rows(tables: list[str]) -> list[dict]:
    """The comparisons of the versus tables (``write_versus``), each once: a table against a reference an earlier
    one had is skipped, and a row setting an earlier table's reference against this one's mirrors a row already
    taken (2-arg minus ReLU and ReLU minus 2-arg), so it is dropped."""
    out, references = [], []
    for path in tables:
        with open(path) as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            continue
        reference = next(c[:-len("_mean")] for c in rows[0] if c.endswith("_mean") and c != "mean")
        if reference in references:
            continue
        for r in rows:
            if r["activation"] not in references:
                out.append({"dataset": r["dataset"], "arch": r["arch"], "metric": r["metric"],
                            "activation": r["activation"], "reference": reference, "diff": float(r["diff"]),
                            "ci95": _interval(r["ci95"]),
                            "significant": bool(r["p_holm"]) and float(r["p_holm"]) < 0.05})
        references.append(reference)
    return out


def fig_versus(args) -> None:
    """Forest plot of the versus tables: each design's difference from its reference with Welch's 95% interval,
    one row of panels per setting (each on its own scale, so a small setting's differences show), one column per
    metric; filled markers where the Holm-adjusted p is below 0.05."""
    from .figures import COLORS, LABELS, plt, save, stamp

    rows = forest_rows(args.tables)
    settings = sorted({(r["dataset"], r["arch"]) for r in rows})
    metrics = [m for m in QUALITY if any(r["metric"] == m for r in rows)]
    references = list(dict.fromkeys(r["reference"] for r in rows))
    designs = [*COLORS, *sorted({r["activation"] for r in rows} - set(COLORS))]
    pairs = {s: sorted({(r["activation"], r["reference"]) for r in rows if (r["dataset"], r["arch"]) == s},
                       key=lambda p: (references.index(p[1]), designs.index(p[0]))) for s in settings}
    fig, axes = plt.subplots(len(settings), len(metrics), squeeze=False, sharey="row",
                             figsize=(3.4 * len(metrics), sum(0.8 + 0.22 * len(p) for p in pairs.values())),
                             gridspec_kw={"height_ratios": [1 + len(pairs[s]) for s in settings]})
    titles = {"test_acc": "test accuracy", "early_acc": "early test accuracy", "robust_acc": "robust accuracy",
              "mce": "CIFAR-10-C mCE (lower is better)"}
    for (dataset, arch), row in zip(settings, axes):
        order = pairs[dataset, arch]
        for ax, metric in zip(row, metrics):
            if not any((r["dataset"], r["arch"], r["metric"]) == (dataset, arch, metric) for r in rows):
                ax.set_visible(False)  # e.g. mCE outside CIFAR-10
                continue
            ax.axvline(0, color="0.6", lw=0.8)
            for y in range(1, len(order)):  # between the comparisons against one reference and the next
                if order[y][1] != order[y - 1][1]:
                    ax.axhline(y - 0.5, color="0.8", lw=0.6, ls="--")
            for r in rows:
                if (r["dataset"], r["arch"], r["metric"]) != (dataset, arch, metric):
                    continue
                y, color = order.index((r["activation"], r["reference"])), COLORS.get(r["activation"], "0.4")
                if r["ci95"]:
                    ax.plot(r["ci95"], [y, y], color=color, lw=1.5)
                ax.plot(r["diff"], y, "o", ms=5, color=color, markerfacecolor=color if r["significant"] else "white")
            ax.set_yticks(range(len(order)), [f"{LABELS.get(a, a)} − {LABELS.get(ref, ref)}" for a, ref in order],
                          fontsize=7)
            ax.set_ylim(len(order) - 0.5, -0.5)
            ax.set_title(f"{dataset} {arch}: {titles[metric]}", fontsize=8)
            ax.set_xlabel("difference (points)", fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    stamp(fig, args.scale, {"mean difference, Welch 95% interval; filled: Holm-adjusted p < 0.05 within its table"})
    save(fig, args.out)
