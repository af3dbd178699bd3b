import argparse
import csv
import json

import pytest
from scipy import stats

from multiarg.comparison import collect, rank_rows, versus_rows, write_versus
from multiarg.comparison_figures import fig_versus, forest_rows
from multiarg.io import save_torch
from multiarg.tables import holm
from multiarg.train import write_metrics


def _row(epoch, val_acc, test_acc, seconds=1.0):
    return dict(epoch=epoch, train_loss=1, train_acc=0.5, val_loss=1, val_acc=val_acc, test_loss=1, test_acc=test_acc,
                seconds=seconds)


def test_ranks_follow_each_metrics_direction_and_keep_the_seed_spread():
    values = {("mnist", "mlp", "arg2"): {"test_acc": [90, 92], "params": [1000], "sec_per_epoch": [3.0, 3.0],
                                        "robust_acc": [40.0]},
              ("mnist", "mlp", "relu"): {"test_acc": [85, 87], "params": [990], "sec_per_epoch": [1.0, 1.0],
                                        "robust_acc": [30.0]},
              ("mnist", "mlp", "gamma"): {"test_acc": [90.5], "params": [1010], "sec_per_epoch": [2.0]}}
    rows = {r["activation"]: r for r in rank_rows(values)}
    assert [rows[a]["test_acc_rank"] for a in ("arg2", "gamma", "relu")] == [1, 2, 3]
    assert [rows[a]["sec_per_epoch_rank"] for a in ("relu", "gamma", "arg2")] == [1, 2, 3]
    assert "params_rank" not in rows["relu"] and rows["arg2"]["robust_acc_rank"] == 1
    assert rows["gamma"]["robust_acc"] == "" and rows["gamma"]["robust_acc_rank"] == ""
    assert rows["arg2"]["test_acc"] == "91.00" and rows["arg2"]["test_acc_sd"] == "1.41"
    assert rows["gamma"]["test_acc_sd"] == ""  # one seed: no spread
    # gamma has no robust accuracy, so the mean rank is over test accuracy alone; time is not in it
    assert rows["arg2"]["mean_rank"] == "1.00" and rows["relu"]["mean_rank"] == "3.00"
    assert rows["arg2"]["mean_rank_over"] == "test_acc"
    # arg2 is best on accuracy; relu's gap has Welch p, gamma's single seed has none
    assert rows["arg2"]["test_acc_p_vs_best"] == rows["gamma"]["test_acc_p_vs_best"] == ""
    assert float(rows["relu"]["test_acc_p_vs_best"]) == pytest.approx(
        stats.ttest_ind([85, 87], [90, 92], equal_var=False).pvalue, rel=1e-3)


def test_the_lower_mce_ranks_first():
    values = {("cifar10", "cnn", "arg2"): {"mce": [90.0, 91.0]}, ("cifar10", "cnn", "relu"): {"mce": [100.0, 101.0]}}
    rows = {r["activation"]: r for r in rank_rows(values)}
    assert (rows["arg2"]["mce_rank"], rows["relu"]["mce_rank"]) == (1, 2)
    assert rows["arg2"]["mce_p_vs_best"] == "" and rows["relu"]["mce_p_vs_best"] != ""


def test_a_missing_or_non_finite_metric_ranks_nobody_first():
    values = {("mnist", "mlp", "arg2"): {"test_acc": [90.0], "robust_acc": [float("nan")]},
              ("mnist", "mlp", "relu"): {"test_acc": [80.0], "robust_acc": [20.0]},
              ("mnist", "mlp", "dac"): {"robust_acc": [10.0]}}
    rows = rank_rows(values)
    by = {r["activation"]: r for r in rows}
    assert by["arg2"]["robust_acc"] == by["arg2"]["robust_acc_rank"] == ""
    assert by["relu"]["robust_acc_rank"] == 1 and by["dac"]["robust_acc_rank"] == 2
    # no quality metric is shared by all three, so nobody gets a mean rank, and the order is left as is
    assert all(r["mean_rank"] == "" for r in rows)


def test_ties_share_the_better_rank():
    values = {("mnist", "mlp", a): {"robust_acc": [v]} for a, v in (("arg2", 0.0), ("relu", 0.0), ("dac", 5.0))}
    rows = {r["activation"]: r["robust_acc_rank"] for r in rank_rows(values)}
    assert rows == {"dac": 1, "arg2": 2, "relu": 2}


def test_a_single_model_in_a_setting_gets_no_rank():
    rows = rank_rows({("mnist", "rnn-rows", "arg2"): {"test_acc": [50.0]}})
    assert rows[0]["test_acc_rank"] == "" and rows[0]["mean_rank"] == ""


def test_collect_reads_runs_at_their_best_epoch(tmp_path):
    models, metrics = [], []
    for act, best in (("arg2", 1), ("relu", 2)):
        for session in (2, 3):
            run = tmp_path / f"results/runs/mnist/mlp/{act}/seed0/session{session}"
            run.mkdir(parents=True)
            write_metrics([_row(1, 0.9, 0.80, 2.0), _row(2, 0.95 if best == 2 else 0.5, 0.70, 4.0)],
                          run / "metrics.csv")
            save_torch({"best_epoch": best}, run / "model.pt")
        models.append(str(run / "model.pt"))
        metrics.append(str(run.parent / "session2" / "metrics.csv"))
    table = tmp_path / "params.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["dataset", "arch", "activation", "params_exact"])
        writer.writeheader()
        writer.writerows([{"dataset": "mnist", "arch": "mlp", "activation": a, "params_exact": n}
                          for a, n in (("arg2", 100), ("relu", 98), ("dac", 97))])
    aa = tmp_path / "aa.json"
    aa.write_text(json.dumps({"dataset": "mnist", "arch": "mlp", "activation": "relu", "robust_accuracy": 0.25}))
    rnn = tmp_path / "rnn.json"
    rnn.write_text(json.dumps({"sequence": "rows", "activation": "tanh", "test_acc": 0.5, "seconds_per_epoch": 7.0,
                               "params": 500}))
    values = collect(models, metrics, str(table), autoattack=[str(aa)], rnn=[str(rnn)], early_epochs=1)
    assert values["mnist", "mlp", "arg2"]["test_acc"] == [pytest.approx(80.0)]
    assert values["mnist", "mlp", "relu"]["test_acc"] == [pytest.approx(70.0)]
    assert values["mnist", "mlp", "relu"]["sec_per_epoch"] == [3.0] and values["mnist", "mlp", "relu"]["params"] == [98]
    assert values["mnist", "mlp", "relu"]["robust_acc"] == [25.0]
    assert values["mnist", "mlp", "relu"]["early_acc"] == [pytest.approx(80.0)]  # session II's first epoch
    assert collect(models, metrics, str(table), early_epochs=5)["mnist", "mlp", "arg2"]["early_acc"] == [
        pytest.approx(75.0)]  # a run shorter than the window averages what it has
    assert ("mnist", "mlp", "dac") not in values  # parameter rows alone do not make a run
    assert values["mnist", "rnn-rows", "tanh"] == {"test_acc": [50.0], "sec_per_epoch": [7.0], "params": [500]}


def test_session_two_and_three_accuracies_pair_up_by_seed_whatever_the_order_given(tmp_path):
    paths = {}
    for seed, acc in ((2, 0.6), (10, 0.9)):
        for session in (2, 3):
            run = tmp_path / f"results/runs/mnist/mlp/arg2/seed{seed}/session{session}"
            run.mkdir(parents=True)
            write_metrics([_row(1, 0.9, acc + 0.01 * session, 2.0)], run / "metrics.csv")
            save_torch({"best_epoch": 1}, run / "model.pt")
            paths[seed, session] = str(run / "model.pt")
    table = tmp_path / "params.csv"
    table.write_text("dataset,arch,activation,params_exact\nmnist,mlp,arg2,100\n")
    values = collect([paths[2, 3], paths[10, 3]], [paths[2, 2].replace("model.pt", "metrics.csv")], str(table),
                     session2_models=[paths[10, 2], paths[2, 2]])  # seed 10 first: numeric, not listed, order
    assert values["mnist", "mlp", "arg2"]["test_acc"] == [pytest.approx(63.0), pytest.approx(93.0)]
    assert values["mnist", "mlp", "arg2"]["session2_acc"] == [pytest.approx(62.0), pytest.approx(92.0)]


VERSUS_VALUES = {("mnist", "mlp", "arg2"): {"test_acc": [90.0, 92.0, 91.0], "mce": [80.0, 82.0]},
                 ("mnist", "mlp", "relu"): {"test_acc": [85.0, 87.0, 86.0], "mce": [100.0, 101.0]},
                 ("mnist", "mlp", "gamma"): {"test_acc": [85.5, 86.5, 86.0]},
                 ("mnist", "mlp", "dac"): {"test_acc": [70.0]},
                 ("cifar10", "cnn", "arg1"): {"test_acc": [50.0, 51.0]}}  # no ReLU in its setting: no row


def test_every_design_against_relu_with_welch_and_holm_over_the_table():
    rows = {(r["activation"], r["metric"]): r for r in versus_rows(VERSUS_VALUES)}
    assert set(rows) == {("arg2", "test_acc"), ("arg2", "mce"), ("gamma", "test_acc"), ("dac", "test_acc")}
    welch = stats.ttest_ind([90, 92, 91], [85, 87, 86], equal_var=False)
    r = rows["arg2", "test_acc"]
    assert (r["diff"], r["seeds"], r["relu_seeds"]) == ("+5.00", 3, 3)
    assert float(r["p"]) == pytest.approx(welch.pvalue, rel=1e-3)
    low, high = stats.t.interval(0.95, welch.df, loc=5.0, scale=5.0 / welch.statistic)
    assert r["ci95"] == f"[{low:+.2f}, {high:+.2f}]"
    # three comparisons have a p; the smallest is multiplied by 3, the next by 2 (step-down), as holm() does
    ps = {k: float(rows[k]["p"]) for k in (("arg2", "test_acc"), ("arg2", "mce"), ("gamma", "test_acc"))}
    assert [float(rows[k]["p_holm"]) for k in ps] == pytest.approx(holm(list(ps.values())), rel=1e-2)
    assert rows["arg2", "test_acc"]["verdict"].startswith("arg2 better than relu")
    # a lower mCE is better: arg2's is 19.5 points below ReLU's
    assert rows["arg2", "mce"]["diff"] == "-19.50" and rows["arg2", "mce"]["verdict"].startswith("arg2 better")
    assert rows["gamma", "test_acc"]["verdict"].startswith("not significant (Holm-adjusted Welch")
    # one seed: the difference of the values, no test
    assert rows["dac", "test_acc"]["diff"] == "-16.00" and rows["dac", "test_acc"]["p"] == ""
    assert rows["dac", "test_acc"]["verdict"].startswith("n/a")
    # against the matching reference instead: the same test from the other side, its own columns and family
    rows = {(r["activation"], r["metric"]): r for r in versus_rows(VERSUS_VALUES, "arg2")}
    assert set(rows) == {("relu", "test_acc"), ("relu", "mce"), ("gamma", "test_acc"), ("dac", "test_acc")}
    r = rows["relu", "test_acc"]
    assert (r["diff"], r["arg2_seeds"], r["arg2_mean"]) == ("-5.00", 3, "91.00") and "relu_seeds" not in r
    assert float(r["p"]) == pytest.approx(welch.pvalue, rel=1e-3) and r["verdict"].startswith("relu worse than arg2")


def test_the_forest_plot_takes_each_comparison_once_from_the_versus_tables(tmp_path):
    tables = []
    for name, reference in (("relu", "relu"), ("arg2", "arg2"), ("again", "relu")):
        tables.append(tmp_path / f"{name}.csv")
        write_versus(versus_rows(VERSUS_VALUES, reference), tables[-1], "tiny", reference)
    rows = {(r["activation"], r["reference"], r["metric"]): r for r in forest_rows(tables)}
    # the repeated ReLU table adds nothing; ReLU minus 2-arg mirrors 2-arg minus ReLU, so it is left out
    assert set(rows) == {("arg2", "relu", "test_acc"), ("arg2", "relu", "mce"), ("gamma", "relu", "test_acc"),
                         ("dac", "relu", "test_acc"), ("gamma", "arg2", "test_acc"), ("dac", "arg2", "test_acc")}
    with open(tables[0]) as fh:
        written = {(r["activation"], r["metric"]): r for r in csv.DictReader(fh)}
    r = rows["arg2", "relu", "test_acc"]
    assert r["diff"] == 5.0 and r["significant"] and f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]" == written[
        "arg2", "test_acc"]["ci95"]
    assert not rows["gamma", "relu", "test_acc"]["significant"]  # Holm p >= 0.05 in its table
    assert rows["dac", "arg2", "test_acc"]["ci95"] is None and not rows["dac", "arg2", "test_acc"]["significant"]
    fig_versus(argparse.Namespace(tables=tables, out=tmp_path / "versus.pdf", scale="tiny"))
    assert (tmp_path / "versus.pdf").stat().st_size > 5_000 and (tmp_path / "versus.png").stat().st_size > 5_000
