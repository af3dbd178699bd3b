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
    the verdict rests. The claims set 2-arg against the baseline its claim is weakest against; this is each design's
    own test."""
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
             "table makes them all at once; the verdict goes by it. The claims table tests 2-arg against whichever of "
             "ReLU and 1-arg the claim is weakest against instead, as the paper's claim needs both beaten."]
    write_table(rows, out, f"Every design against {name} ({scale})", notes=notes)


def write_summary(rows: list[dict], out: str, scale: str) -> None:
    notes = ["test_acc: test accuracy (%) of session III (the outer network retrained on the frozen learned "
             "nonlinearity; for the RNN, the one joint training) at the best-validation epoch; robust_acc: Table 1 "
             "robust accuracy (%) after adversarial training; mce: CIFAR-10-C mCE (%) against ReLU; early_acc: mean "
             "session-II test accuracy (%) over the first epochs (summary.early_epochs), how fast a model learns "
             "(the paper's Fig. 4d); params: exact "
             "parameter count (matched to the 2-arg network, a -flops baseline in forward FLOPs instead, a -width "
             "one at its widths, unmatched); "
             "sec_per_epoch: session-II seconds per epoch on the "
             "machine that ran it (jobs running side by side share it, so compare within one run only).",
             "Means and SDs over seeds; ranks within each dataset x arch (1 = best: highest accuracy, lowest mCE, "
             "fastest); parameters are matched, so not ranked. mean_rank averages the ranks of the quality metrics "
             "(accuracy, early accuracy, robust accuracy, mCE) that every model of the setting has "
             "(mean_rank_over), not time. Ranks go by the means; <metric>_p_vs_best is Welch's two-sided p of the "
             "gap to the best model over the seeds (empty with fewer than two seeds): p >= 0.05 means seed noise "
             "could explain the gap."]
    write_table(rows, out, f"Summary: every activation ranked per setting ({scale})", notes=notes)
