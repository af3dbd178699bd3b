"""The claims table reads each claim's test from the tables the pipeline writes."""
import itertools

import numpy as np
import pytest
from scipy import stats

from multiarg.claims import write_claims
from multiarg.comparison import write_values
from multiarg.nonlinearities import curvature_rows, spectra_rows
from multiarg.robust_table import table1_rows
from multiarg.tables import holm, regression, write_table


_SEEDS = itertools.count()


def _function(kind, arch, curvature, l2, r2=0.9, seed=None):
    """A function grown from a session-I net of its own unless ``seed`` names one to share."""
    seed = next(_SEEDS) if seed is None else seed
    return {"kind": kind, "n_args": 2, "arch": arch, "dataset": "mnist", "activation": "arg2", "seed": seed,
            "curvature": curvature,
            "curvature_sign": int(np.sign(curvature)), "curvature_tie": "" if curvature else "flat",
            "curvature_other_weighting": curvature,
            "curvature_sign_other_weighting": int(np.sign(curvature)), "constant": False, "r2": r2,
            "saddle_share_l2": 0.8, "spectrum_fraction": np.array([0.0, 1 - l2, l2]),
            "spectrum": np.array([1.0, 1 - l2, l2])}


def _robust(activation, seed, robust):
    return {"dataset": "mnist", "arch": "cnn", "activation": activation, "seed": seed, "eps": 0.3, "n": 100,
            "robust_accuracy": robust, "clean_accuracy": 0.9, "attacks": ["apgd-ce"], "complete": True,
            "robust_accuracy_after": {"apgd-ce": robust}, "data_note": ""}


def test_claims_carry_each_tests_interval_p_and_verdict(tmp_path):
    functions = ([_function("learned", "cnn", -1.0, 0.7 + 0.01 * s) for s in range(12)]
                 + [_function("learned", "mlp", 1.0, 0.7) for _ in range(10)]
                 + [_function("learned", "mlp", 0.0, 0.7) for _ in range(2)]  # flat: ties
                 + [_function("xavier-init", "cnn", 1.0, 0.1 + 0.01 * s) for s in range(6)])
    # 1-arg is the stronger baseline at test accuracy, ReLU at early accuracy; a DAC net beats everyone but is not a
    # baseline the paper's claim names
    values = {("mnist", "cnn", a): {"test_acc": acc, "early_acc": early}
              for a, acc, early in (("arg2", [90.0, 91.0], [80.0, 81.0]), ("relu", [60.0, 61.0], [70.0, 72.0]),
                                    ("arg1", [90.0, 92.0], [50.0, 51.0]), ("dac", [99.0, 99.5], [95.0, 96.0]))}
    values["mnist", "rnn-rows", "arg2"] = {"test_acc": [50.0, 51.0]}
    write_values(values, str(tmp_path / "summary_values.json"))
    tables = {"curvature": curvature_rows(functions), "spectra": spectra_rows(functions),
              "table1": table1_rows([_robust(a, s, r + 0.01 * s) for s in range(4) for a, r in (("arg2", 0.5),
                                                                                                ("relu", 0.1))])}
    for name, rows in tables.items():
        write_table(rows, str(tmp_path / f"{name}.csv"), name)
    rows = write_claims(str(tmp_path / "claims.csv"), "TEST", summary_values=str(tmp_path / "summary_values.json"),
                        **{k: str(tmp_path / f"{k}.csv") for k in tables})
    by = {r["claim"]: r for r in rows}
    cnn = by["learned 2-arg CNN nonlinearities: sign of curvature"]
    assert cnn["measured"] == "12/12 negative" and cnn["verdict"].startswith("mostly negative")
    assert cnn["vs_paper"] == "agrees"
    mlp = by["learned 2-arg MLP nonlinearities: sign of curvature"]
    # the paper's MLP leaned positive without significance; significantly positive here is on its side
    assert mlp["verdict"].startswith("mostly positive") and mlp["vs_paper"] == "agrees"
    assert mlp["measured"] == "0/10 negative (+2 flat, left out)"
    # the paper's fractions, on the interval's scale, and how likely a run of this n was to show them
    assert (cnn["paper_value"], cnn["paper_in_ci95"], cnn["power_at_paper"]) == ("0.78", "inside", "0.49")
    assert (mlp["paper_value"], mlp["paper_in_ci95"]) == ("0.2917", "inside")  # the interval is [0, 0.308]
    l2 = by["2-arg spectra, learned vs Xavier-initialised: share of power at l = 2"]
    assert l2["verdict"] == "learned more at l = 2, Welch p < 0.05" and l2["interval95"].startswith("[+")
    l1 = by["2-arg spectra, learned vs Xavier-initialised: share of power at l = 1"]
    assert l1["vs_paper"] == "agrees" and l1["interval95"].startswith("[-")  # Xavier's is the larger share
    speed = by["mnist CNN: 2-arg learns faster (early test accuracy)"]
    # the interval is scipy's ttest_ind(equal_var=False).confidence_interval()
    assert speed["verdict"] == "2-arg faster than relu, Welch p < 0.05" and speed["interval95"] == "[+2.58, +16.42]"
    assert speed["measured"] == "arg2 80.50% (n = 2), relu 71.00% (n = 2)"
    better = by["mnist CNN: 2-arg performs better (session-III test accuracy)"]
    assert better["measured"].endswith("arg1 91.00% (n = 2)")
    assert better["verdict"] == "not significant (Welch p >= 0.05)" and better["p"] == "0.712"
    assert better["vs_paper"] == "not shown (not significant here)" and speed["vs_paper"] == "agrees"
    assert not any("RNN" in c for c in by)  # the paper claims nothing of its recurrent suggestion
    robust = by["mnist CNN: 2-arg minus ReLU robust accuracy (AutoAttack)"]
    assert robust["verdict"] == "2-arg more robust, Welch p < 0.05" and robust["vs_paper"] == "agrees"
    assert (robust["paper_value"], robust["paper_in_ci95"]) == ("39.92", "inside")  # the interval: [+37.77, +42.23]
    assert not any("CIFAR-10-C" in c for c in by)  # not run: no claim, rather than an empty one
    assert "The paper's claims" in (tmp_path / "claims.md").read_text()


def test_the_cifar10c_claim_carries_the_tables_interval_p_and_verdict(tmp_path, cifar10c_errors):
    from multiarg.cifar10c import write_summary_table

    errors = ([cifar10c_errors(tmp_path, "cnn", "arg2", s, e) for s, e in enumerate((0.30, 0.31, 0.32))]
              + [cifar10c_errors(tmp_path, "cnn", "relu", s, e) for s, e in enumerate((0.40, 0.41))])
    table = write_summary_table(errors, str(tmp_path / "cifar10c.csv"), "TEST")
    mce = next(r for r in table if r["activation"] == "arg2" and r["corruption"] == "mCE")
    write_values({}, str(tmp_path / "summary_values.json"))
    write_table([], str(tmp_path / "empty.csv"))
    rows = write_claims(str(tmp_path / "claims.csv"), "TEST", curvature=str(tmp_path / "empty.csv"),
                        spectra=str(tmp_path / "empty.csv"), summary_values=str(tmp_path / "summary_values.json"),
                        cifar10c=str(tmp_path / "cifar10c.csv"))
    claim = next(r for r in rows if r["claim"].startswith("CIFAR-10-C"))
    assert claim["verdict"] == mce["mce_verdict"] == "lower mCE than ReLU, Welch p < 0.05"
    assert (claim["p"], claim["interval95"]) == (mce["mce_vs_relu_p"], mce["mce_vs_relu_ci95"])
    assert float(claim["p"]) < 0.05 and claim["interval95"].startswith("[-")
    assert claim["measured"] == f"mCE {mce['ce_pct']}%" and claim["vs_paper"] == "agrees"  # the paper: 91.3%
    # on the interval's scale (mCE less 100) the paper's -8.7 lies above the whole interval: a larger effect here
    assert (claim["paper_value"], claim["paper_in_ci95"]) == ("-8.7", "outside")
    assert float(claim["interval95"].strip("[]").split(",")[1]) < -8.7
    relative = next(r for r in rows if r["claim"] == "CIFAR-10-C: 2-arg CNN relative mCE against ReLU's (100%)")
    assert (relative["p"], relative["verdict"]) == (mce["relative_mce_vs_relu_p"], mce["relative_mce_verdict"])
    assert relative["paper"] == "relative mCE 99.5%"
    assert relative["measured"] == f"relative mCE {mce['relative_ce_pct']}%"


def test_a_significantly_worse_2arg_net_is_called_worse_than_the_stronger_baseline():
    from multiarg.claims import baseline_claims

    values = {("mnist", "mlp", a): {"test_acc": acc} for a, acc in (("arg2", [80.0, 81.0]), ("relu", [90.0, 91.0]),
                                                                    ("arg1", [85.0, 86.0]))}
    (row,) = baseline_claims(values)
    assert row["claim"] == "mnist MLP: 2-arg performs better (session-III test accuracy)"
    assert row["verdict"] == "2-arg worse than relu, Welch p < 0.05" and row["interval95"].startswith("[-")
    assert row["vs_paper"] == "contradicts"


def test_holm_steps_down_and_leaves_missing_p_out_of_the_family():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then made monotone: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([float("nan"), 0.01, 0.6])  # a family of 2
    assert np.isnan(adjusted[0]) and adjusted[1:] == pytest.approx([0.02, 0.6])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


def test_regression_tests_the_slope_against_0_and_1_and_the_intercept_against_0():
    from scipy import stats

    x = np.array([-0.6, -0.4, -0.3, -0.1, 0.0, 0.2, 0.5])
    y = 0.3 * x - 0.1 + np.array([0.05, -0.04, 0.02, -0.03, 0.01, 0.04, -0.05])
    line = regression(x, y)
    fit = stats.linregress(x, y)
    assert line["n"] == 7 and line["r"] == pytest.approx(fit.rvalue)
    assert line["slope"]["estimate"] == pytest.approx(fit.slope) and line["slope"]["p"] == pytest.approx(fit.pvalue)
    assert line["slope"]["ci_low"] < 0.3 < line["slope"]["ci_high"] < 1
    # y - x on x has slope - 1 with the same standard error, so scipy's p of that line is the slope's p against 1
    assert line["slope_p_vs_one"] == pytest.approx(stats.linregress(x, y - x).pvalue)
    t = fit.intercept / fit.intercept_stderr
    assert line["intercept"]["estimate"] == pytest.approx(-0.1, abs=0.03)
    assert line["intercept"]["p"] == pytest.approx(2 * stats.t.sf(abs(t), 5))
    assert regression([0.1, 0.2], [1.0, 2.0]) is None and regression([0.3] * 4, [1.0, 2.0, 3.0, 4.0]) is None


def test_claims_are_adjusted_as_one_family(tmp_path):
    # the CNN and MLP nets of seeds 0-6 share their session-I nets, as a run's do
    functions = ([_function("learned", "cnn", -1.0, 0.7, seed=s) for s in range(10)]
                 + [_function("learned", "mlp", -1.0, 0.7, seed=s) for s in range(6)]
                 + [_function("learned", "mlp", 1.0, 0.7, seed=6)])
    write_table(curvature_rows(functions), str(tmp_path / "curvature.csv"), "curvature")
    write_values({}, str(tmp_path / "values.json"))
    rows = write_claims(str(tmp_path / "claims.csv"), "TEST", curvature=str(tmp_path / "curvature.csv"),
                        spectra="", summary_values=str(tmp_path / "values.json"))
    p = {r["claim"].split(":")[0]: (float(r["p"]), float(r["p_holm"])) for r in rows}
    # 10/10 (p = 0.00195), 6/7 (p = 0.125) and the two against each other (one pair differs: McNemar p = 1): the
    # smallest tripled, the next doubled, the largest kept
    cnn, mlp = p["learned 2-arg CNN nonlinearities"], p["learned 2-arg MLP nonlinearities"]
    both = p["learned 2-arg nonlinearities"]
    assert cnn[1] == pytest.approx(3 * cnn[0], rel=1e-2) and mlp[1] == 2 * mlp[0] and both == (1.0, 1.0)
    assert "over the 3 claims with a p-value" in (tmp_path / "claims.md").read_text()


def test_the_cnn_and_mlp_nets_of_one_start_are_tested_against_each_other_where_a_run_has_both():
    from multiarg.claims import architecture_claims

    # seeds 0-8: the CNN negative and the MLP positive on both datasets; 9 and 10: both negative; 11: on MNIST the
    # MLP alone negative. 18 pairs differ one way and 1 the other, but from 10 starts: a seed's two datasets are one
    # unit, and only the 9 seeds that differ twice have to line up, 2 of the 2^10 sign flips as extreme either way
    signs = {**{s: (-1.0, 1.0, -1.0, 1.0) for s in range(9)}, 9: (-1.0,) * 4, 10: (-1.0,) * 4,
             11: (1.0, -1.0, 1.0, 1.0)}
    functions = [_function("learned", arch, sign[i], 0.7, seed=s) | {"dataset": dataset}
                 for s, sign in signs.items()
                 for i, (dataset, arch) in enumerate((("mnist", "cnn"), ("mnist", "mlp"), ("cifar10", "cnn"),
                                                      ("cifar10", "mlp")))]
    (claim,) = architecture_claims(curvature_rows(functions))
    assert claim["measured"] == "24 CNN-MLP pairs from one start: CNN alone negative in 18, MLP alone in 1"
    assert float(claim["p"]) == pytest.approx(2 * 2 / 2**10, rel=1e-3)
    assert float(claim["p"]) > 50 * stats.binomtest(18, 19).pvalue  # what 19 independent pairs would give
    assert claim["verdict"] == "CNN more often negative, McNemar p < 0.05" and claim["vs_paper"] == "agrees"
    swapped = [{**f, "arch": "mlp" if f["arch"] == "cnn" else "cnn"} for f in functions]
    assert architecture_claims(curvature_rows(swapped))[0]["vs_paper"] == "contradicts"
    assert architecture_claims(curvature_rows([f for f in functions if f["arch"] == "cnn"])) == []
    # the CNNs pooled over datasets likewise: 22 of 24 negative from 12 starts, one positive on both datasets; a
    # flip of one start's sign (12 ways) or none is as extreme
    pooled = {(r["kind"], r["arch"], r["dataset"]): r for r in curvature_rows(functions)}["learned", "cnn", "all"]
    assert (pooled["k_negative"], pooled["n"], pooled["n_starts"]) == (22, 24, 12)
    assert float(pooled["p_two_sided"]) == pytest.approx(2 * 13 / 2**12, rel=1e-3)


def test_a_result_stands_to_the_papers_by_its_side_and_significance():
    from multiarg.claims import against_paper

    significant, ns = "learned more at l = 2, Welch p < 0.05", "not significant (Welch p >= 0.05)"
    assert against_paper(0.2, significant, 1) == "agrees" and against_paper(-0.2, significant, 1) == "contradicts"
    assert against_paper(-0.2, significant, -1) == "agrees" and against_paper(0.2, significant, -1) == "contradicts"
    assert against_paper(0.2, ns, 1) == "not shown (not significant here)"
    assert against_paper(0.2, ns, 1, paper_significant=False) == "agrees (not significant, as in the paper)"
    assert against_paper(0.0, ns, 1, paper_significant=False) == "agrees (not significant, as in the paper)"
    assert against_paper(-0.2, ns, 1, paper_significant=False) == (
        "agrees (not significant, as in the paper); leans the other way")
    assert against_paper(0.2, "", 1) == against_paper(0.2, "n/a (fewer than two seeds)", 1) == ""
    # the verdict decides, not the rounded p beside it: a p of 0.04996 prints as 0.05 in a table
    assert against_paper(-0.1, "mostly negative (XOR-like), two-sided p < 0.05", -1) == "agrees"


def test_session_three_is_tested_against_session_two_paired_by_seed():
    from multiarg.claims import retraining_claims
    from multiarg.tables import paired_difference

    second = [97.0, 96.0, 97.5, 96.5]
    values = {("mnist", "mlp", "arg2"): {"test_acc": [s + d for s, d in zip(second, (0.3, 0.1, -0.2, 0.2))],
                                         "session2_acc": second},
              ("mnist", "cnn", "arg2"): {"test_acc": [s - 1.0 - 0.1 * i for i, s in enumerate(second)],
                                         "session2_acc": second},
              ("mnist", "mlp", "relu"): {"test_acc": [90.0, 91.0], "session2_acc": [90.0, 91.0]}}
    rows = {r["claim"].split(":")[0]: r for r in retraining_claims(values)}
    assert set(rows) == {"mnist MLP", "mnist CNN"}  # 2-arg only
    mlp, cnn = rows["mnist MLP"], rows["mnist CNN"]
    # paired: the seeds' spread (0.5 to 1.5 points) drops out, as it would not in Welch's test
    paired = stats.ttest_rel(values["mnist", "mlp", "arg2"]["test_acc"], second)
    assert mlp["p"] == f"{paired.pvalue:.3g}" and mlp["verdict"] == "not significant (paired t p >= 0.05)"
    assert mlp["vs_paper"] == "agrees (not significant, as in the paper)"
    assert cnn["verdict"] == "session III lower, paired t p < 0.05" and cnn["vs_paper"] == "contradicts"
    assert cnn["measured"] == "session III 95.60%, session II 96.75% (n = 4 seeds)"
    interval = paired_difference(values["mnist", "cnn", "arg2"]["test_acc"], second)
    assert cnn["interval95"] == f"[{interval['ci_low']:+.2f}, {interval['ci_high']:+.2f}]"
    assert paired_difference([1.0], [2.0]) is None


def test_session_three_capped_shorter_than_session_two_is_not_set_against_it(tmp_path):
    values = {("mnist", "mlp", "arg2"): {"test_acc": [90.0, 91.0], "session2_acc": [97.0, 98.0]}}
    write_values(values, str(tmp_path / "values.json"))
    write_table([], str(tmp_path / "empty.csv"))
    tables = {t: str(tmp_path / "empty.csv") for t in ("curvature", "spectra")}
    fair = write_claims(str(tmp_path / "fair.csv"), "T", **tables, summary_values=str(tmp_path / "values.json"),
                        session_epochs=(8, 8))
    assert [r["claim"].split(",")[0] for r in fair] == ["mnist MLP: retrained on the frozen 2-arg nonlinearity"]
    short = write_claims(str(tmp_path / "short.csv"), "T", **tables, summary_values=str(tmp_path / "values.json"),
                         session_epochs=(40, 1))
    assert short == [] and "(maximum epochs: session II 40, session III 1)" in (tmp_path / "short.md").read_text()


def test_how_quadratic_learned_and_trained_xavier_nets_are_against_untrained_ones():
    from multiarg.claims import quadratic_claims

    learned = [0.95 + 0.005 * s for s in range(6)]
    untrained = [0.80 + 0.02 * s for s in range(6)]
    functions = ([_function("learned", "mlp", -1.0, 0.5, r2) for r2 in learned]
                 + [_function("learned", "mlp", 0.0, 0.5, 1.0)]  # a plane fits exactly: left out, as a tie
                 + [_function("xavier-init", "mlp", 1.0, 0.5, r2) for r2 in untrained]
                 + [_function("xavier-trained", "mlp", 1.0, 0.5, r2) for r2 in untrained[::-1]])
    rows = {r["claim"].split(":")[0]: r for r in quadratic_claims(curvature_rows(functions))}
    welch = stats.ttest_ind(learned, untrained, equal_var=False)
    closer = rows["learned 2-arg nonlinearities"]
    assert closer["p"] == f"{welch.pvalue:.3g}" and closer["verdict"].startswith("more quadratic than xavier-init")
    assert closer["measured"] == f"mean R² {np.mean(learned):.3f}, untrained Xavier {np.mean(untrained):.3f}"
    assert closer["vs_paper"] == "agrees"
    same = rows["Xavier-initialised 2-arg nets"]
    assert same["verdict"] == "not significant (Welch p >= 0.05)"
    assert same["vs_paper"] == "not shown (not significant here)"


def test_xavier_nets_are_paired_with_their_own_inits_where_the_run_analysed_those():
    """A run of one setting analyses each Xavier net untrained and trained: the same nets, so a paired t; trained
    nets whose inits were analysed in another setting (other seeds) are independent of them: Welch."""
    from multiarg.claims import quadratic_claims

    untrained = [0.80, 0.85, 0.90, 0.70, 0.75]
    trained = [u + 0.05 + 0.01 * i for i, u in enumerate(untrained)]  # each net gains, by little and alike

    def xavier(kind, seed, r2):
        return {**_function(kind, "mlp", 1.0, 0.5, r2), "activation": "arg2-xavier", "seed": seed}

    inits = [xavier("xavier-init", s, r2) for s, r2 in enumerate(untrained)]
    same = curvature_rows(inits + [xavier("xavier-trained", s, r2) for s, r2 in enumerate(trained)])
    (row,) = [r for r in same if r["kind"] == "xavier-trained" and r["dataset"] == "mnist"]
    paired = stats.ttest_rel(trained, untrained)
    assert (row["r2_vs_xavier_init_test"], row["r2_vs_xavier_init_p"]) == ("paired t", f"{paired.pvalue:.3g}")
    assert row["r2_verdict"] == "more quadratic than xavier-init, paired t p < 0.05"
    (claim,) = [c for c in quadratic_claims(same) if c["claim"].startswith("Xavier")]
    assert claim["source"] == "curvature_tests (quadratic fit R², paired t)"
    other = curvature_rows(inits + [xavier("xavier-trained", s + 5, r2) for s, r2 in enumerate(trained)])
    (row,) = [r for r in other if r["kind"] == "xavier-trained" and r["dataset"] == "mnist"]
    welch = stats.ttest_ind(trained, untrained, equal_var=False)
    assert (row["r2_vs_xavier_init_test"], row["r2_vs_xavier_init_p"]) == ("Welch", f"{welch.pvalue:.3g}")
    assert paired.pvalue < 0.01 < welch.pvalue  # the pairing is what shows a gain this small
    (alone,) = [r for r in curvature_rows(inits + [xavier("xavier-trained", 0, 0.9)])
                if r["kind"] == "xavier-trained" and r["dataset"] == "mnist"]
    assert alone["r2_verdict"] == "n/a (fewer than two pairs of nets with curved fits)"


def test_a_curvature_kept_from_session_one_is_not_shown_to_be_learned():
    """The CNN's learned nets are all negative, but so were their starts: nothing changed, so the claim that
    session II learned the sign is not shown; the MLP's turned positive, the paper's side for the MLP."""
    from multiarg.claims import start_claims

    def pair(arch, seed, before, after):
        run = {"activation": "arg2", "seed": seed}
        return [{**_function("start", arch, before, 0.5), **run, "curvature_normalised": before / 2},
                {**_function("learned", arch, after, 0.5), **run, "curvature_normalised": after / 2 + seed / 100}]

    functions = ([r for s in range(10) for r in pair("cnn", s, -1.0, -1.0)] + pair("cnn", 10, 1.0, -1.0)
                 + pair("cnn", 11, -1.0, 1.0) + [r for s in range(8) for r in pair("mlp", s, -1.0, 1.0)])
    rows = {r["claim"]: r for r in start_claims(curvature_rows(functions))}
    cnn = rows["learned 2-arg CNN nonlinearities: curvature sign learned in session II, not kept from session I"]
    assert cnn["measured"] == "11 -> 11 negative; 1 turned negative, 1 positive"
    assert (cnn["interval95"], cnn["p"]) == ("[0.013, 0.987]", "1")
    assert cnn["vs_paper"] == "not shown (not significant here)"
    mlp = rows["learned 2-arg MLP nonlinearities: curvature sign learned in session II, not kept from session I"]
    assert mlp["verdict"] == "turned positive, McNemar p < 0.05" and mlp["vs_paper"] == "agrees"
    # the paired t of the normalised curvature: the CNN's changes (s/100, and -1 + 0.1, +1 + 0.11) average 0.055
    cnn_t = rows["learned 2-arg CNN nonlinearities: session II moves the curvature towards negative (XOR-like)"]
    t = stats.ttest_1samp([s / 100 for s in range(10)] + [-0.9, 1.11], 0.0)
    assert cnn_t["measured"] == "normalised curvature, learned minus start: +0.055 on average"
    assert cnn_t["p"] == f"{t.pvalue:.3g}" and cnn_t["vs_paper"] == "not shown (not significant here)"
    mlp_t = rows["learned 2-arg MLP nonlinearities: session II moves the curvature towards positive (elliptic)"]
    assert mlp_t["verdict"] == "more elliptic than at the start, paired t p < 0.05" and mlp_t["vs_paper"] == "agrees"
    assert mlp_t["interval95"].startswith("[+1.0")  # each moved by 1 + s/100, s < 8
    assert start_claims(curvature_rows([_function("learned", "cnn", -1.0, 0.5)])) == []  # no starts, no claim


def test_spectra_claims_set_learned_functions_against_xavier_and_their_own_starts(tmp_path):
    from multiarg.claims import read_rows, spectra_claims

    def function(kind, seed, l2):
        return {**_function(kind, "cnn", -1.0, l2), "activation": "arg2", "seed": seed}

    functions = ([function("start", s, 0.5 + 0.01 * s) for s in range(6)]
                 + [function("learned", s, 0.4 + 0.012 * s) for s in range(6)]  # each lower than its start
                 + [function("xavier-init", s, 0.2 + 0.01 * s) for s in range(6)])
    write_table(spectra_rows(functions), tmp_path / "spectra.csv")  # as the claims step reads it
    rows = {r["claim"]: r for r in spectra_claims(read_rows(tmp_path / "spectra.csv"))}
    start = rows["2-arg spectra, learned vs their session-I starts: share of power at l = 2"]
    assert start["paper"] == "learned: more power at l = 2 (quadrupole) (implied: learned in session II)"
    assert start["measured"] == "learned 0.4300 (n = 6), starts 0.5250 (n = 6)"
    assert start["verdict"].startswith("less at l = 2 than at the start") and start["vs_paper"] == "contradicts"
    xavier = rows["2-arg spectra, learned vs Xavier-initialised: share of power at l = 2"]
    assert xavier["vs_paper"] == "agrees" and xavier["source"] == "spectra (Welch)"
    assert len(rows) == 4  # l = 1 and 2 against each; no 3-arg functions, no 3-arg claims


def test_better_than_both_baselines_is_tested_against_the_one_the_claim_is_weakest_against():
    """An intersection-union test: the claim stands only if it stands against both, so the row is the comparison
    with the larger one-sided p of 2-arg ahead, whichever baseline has the higher mean."""
    from multiarg.claims import baseline_claims

    tight, noisy = [91.0, 91.1, 91.2], [80.0, 99.0, 80.0]  # noisy: a lower mean than ReLU, no evidence either way
    row = lambda arg2, relu, arg1: baseline_claims(  # noqa: E731
        {("mnist", "mlp", a): {"test_acc": v} for a, v in (("arg2", arg2), ("relu", relu), ("arg1", arg1))})[0]
    ahead = row(tight, [90.0, 90.1, 90.2], noisy)  # 2-arg beats ReLU clearly, but not the noisy 1-arg
    assert ahead["verdict"] == "not significant (Welch p >= 0.05)" and ahead["measured"].endswith("arg1 86.33% (n = 3)")
    assert ahead["vs_paper"] == "not shown (not significant here)"
    behind = row([90.0, 90.1, 90.2], tight, [80.0, 105.0, 95.0])  # ReLU clearly ahead, 1-arg's mean higher still
    assert behind["verdict"] == "2-arg worse than relu, Welch p < 0.05" and behind["vs_paper"] == "contradicts"
    both = row(tight, [90.0, 90.1, 90.2], [89.0, 89.2, 89.4])
    assert both["verdict"] == "2-arg better than arg1, Welch p < 0.05" and both["vs_paper"] == "agrees"


def test_a_difference_printed_as_zero_keeps_its_side():
    from multiarg.claims import _midpoint, against_paper

    significant = "lower mCE than ReLU, Welch p < 0.05"
    assert against_paper(_midpoint("[-0.00, -0.00]"), significant, -1) == "agrees"
    assert against_paper(_midpoint("[+0.00, +0.01]"), significant, -1) == "contradicts"
    assert np.isnan(_midpoint("")) and against_paper(float("inf"), significant, 1) == "agrees"


def test_an_all_flat_group_has_no_quadratic_claim_to_test():
    from multiarg.claims import quadratic_claims

    functions = ([_function("learned", "mlp", 0.0, 0.5, 1.0) for _ in range(4)]
                 + [_function("xavier-init", "mlp", 1.0, 0.5, r2) for r2 in (0.8, 0.82, 0.84)])
    (row,) = quadratic_claims(curvature_rows(functions))
    assert row["verdict"] == "n/a (fewer than two curved fits)" and row["vs_paper"] == ""
    assert row["measured"] == "mean R² n/a, untrained Xavier 0.820"


def test_the_family_note_counts_significance_by_the_verdicts():
    from multiarg.claims import adjust_for_the_family

    rows = [{"p": "0.05", "verdict": "mostly negative (XOR-like), two-sided p < 0.05"},  # 0.04996, rounded
            {"p": "0.3", "verdict": "not significant (two-sided p >= 0.05)"}]
    assert "p < 0.05 in 1 of them, p_holm < 0.05 in 0" in adjust_for_the_family(rows)


def test_signs_that_all_stayed_put_show_no_learning():
    from multiarg.claims import start_claims

    functions = [{**_function(kind, "cnn", -1.0, 0.5, seed=s), "curvature_normalised": -0.3 + (kind == "start") * s / 9}
                 for s in range(5) for kind in ("start", "learned")]
    (kept, moved) = start_claims(curvature_rows(functions))
    assert kept["verdict"] == "n/a (no sign changed)" and kept["vs_paper"] == "not shown (no sign changed)"
    assert moved["verdict"] == "more XOR-like than at the start, paired t p < 0.05" and moved["vs_paper"] == "agrees"
