import numpy as np
import pytest
from scipy import stats

from multiarg.robust_table import table1_rows, write_table1
from multiarg.tables import difference_cells, welch_difference


ATTACKS = ["apgd-ce", "apgd-t", "fab-t", "square"]


def _result(activation, seed, robust, clean=0.9, complete=True):
    # APGD-CE leaves 3 points more robust than the end, APGD-T takes 2 of them, FAB-T none, Square the last one
    after = dict(zip(ATTACKS, (robust + 0.03, robust + 0.01, robust + 0.01, robust)))
    return {"dataset": "mnist", "arch": "cnn", "activation": activation, "seed": seed, "eps": 0.3, "n": 100,
            "robust_accuracy": robust, "clean_accuracy": clean, "attacks": ATTACKS, "robust_accuracy_after": after,
            "complete": complete, "data_note": ""}


def test_table1_means_spread_and_increment():
    rows = {r["activation"]: r for r in table1_rows(
        [_result("arg2", 0, 0.50), _result("arg2", 1, 0.40), _result("relu", 0, 0.10), _result("relu", 1, 0.20)])}
    assert rows["arg2"]["robust_acc"] == "45.00" and rows["arg2"]["robust_sd"] == "7.07"
    assert rows["arg2"]["robust_after_each"] == "48.00 / 46.00 / 46.00 / 45.00"
    # 45 - 15 = +30; SD of the difference of means: sqrt(7.07^2/2 + 7.07^2/2) = 7.07
    assert rows["arg2"]["increment_vs_relu"] == "+30.00 ± 7.07"
    assert rows["arg2"]["paper_robust_acc"] == "49.25" and rows["arg2"]["paper_increment"] == "+39.92"
    assert rows["relu"]["increment_vs_relu"] == ""
    # Welch with two seeds each: df = 2, so the 95% interval is +30 ± t(0.975, 2) 7.07 = ± 30.42
    welch = stats.ttest_ind([50, 40], [10, 20], equal_var=False)
    assert rows["arg2"]["increment_ci95"] == "[-0.42, +60.42]"
    assert rows["arg2"]["increment_p"] == f"{welch.pvalue:.3g}" == "0.0513"
    assert rows["arg2"]["verdict"].startswith("not significant")
    rows = table1_rows([_result("arg2", s, 0.5 + 0.01 * s) for s in range(4)]
                       + [_result("relu", s, 0.1 + 0.01 * s) for s in range(4)])
    assert rows[0]["verdict"] == "2-arg more robust, Welch p < 0.05"


def test_table1_files_say_when_the_attack_was_a_subset(tmp_path):
    import json

    paths = []
    for i, r in enumerate([_result("arg2", 0, 0.3, complete=False), _result("relu", 0, 0.2, complete=False)]):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(r))
    rows = write_table1([str(p) for p in paths], str(tmp_path / "table1.csv"), "TEST")
    assert rows[0]["increment_vs_relu"] == "+10.00 ± n/a (one seed)" and rows[0]["verdict"].startswith("n/a")
    assert "NOT the standard AutoAttack" in (tmp_path / "table1.md").read_text()
    tex = (tmp_path / "table1.tex").read_text()
    assert tex.count("\\\\") == 3 and "30.00 $\\pm$ n/a" in tex
    plus = []
    for i, r in enumerate([_result("arg2", 0, 0.3), _result("relu", 0, 0.2)]):
        plus.append(tmp_path / f"plus{i}.json")
        plus[-1].write_text(json.dumps({**r, "version": "plus"}))
    write_table1([str(p) for p in plus], str(tmp_path / "plus.csv"), "TEST")
    assert "AutoAttack's plus version, every one of its attacks" in (tmp_path / "plus.md").read_text()


def test_clean_accuracy_comes_from_the_clean_evaluation():
    (row,) = table1_rows([_result("relu", 0, 0.5, clean=0.9)])
    assert (row["clean_acc"], row["robust_acc"], row["clean_sd"]) == ("90.00", "50.00", "n/a")


def test_welch_difference_without_spread():
    """Identical seeds: no spread, so only the sign of the difference decides (p 1 for none, 0 for any)."""
    same = welch_difference([0.0, 0.0], [0.0, 0.0])
    assert same["p"] == 1 and same["se"] == 0
    assert difference_cells(same, "more", "less")[1:] == ("1", "not significant (Welch p >= 0.05)")
    apart = welch_difference([1.0, 1.0], [0.0, 0.0])
    assert apart["p"] == 0 and (apart["ci_low"], apart["ci_high"]) == (1.0, 1.0)
    assert difference_cells(apart, "more", "less")[2] == "more, Welch p < 0.05"


def test_a_non_finite_value_gets_no_verdict():
    """NaN compares false with 0.05, so without a check it would read as a significant difference."""
    assert difference_cells(welch_difference([1.0, float("nan")], [0.0, 1.0]), "more", "less") == (
        "", "", "n/a (a value is not finite)")


def test_seeds_attacked_differently_are_not_averaged_nor_set_against_each_other():
    other = {**_result("arg2", 1, 0.4), "eps": 0.1}
    with pytest.raises(ValueError, match="mnist cnn arg2: its seeds were attacked with different eps"):
        table1_rows([_result("arg2", 0, 0.5), other])
    plus = [{**_result("relu", s, 0.1), "version": "plus"} for s in range(2)]
    with pytest.raises(ValueError, match="mnist cnn: 2-arg and ReLU were attacked with different version"):
        table1_rows([_result("arg2", s, 0.5) for s in range(2)] + plus)


def test_welch_from_a_summary_tables_means_and_sds_is_welch_from_the_values():
    from multiarg.tables import welch_from_summary

    a, b = np.array([97.1, 97.3, 96.9, 97.2]), np.array([96.4, 96.6, 96.2])
    summary = welch_from_summary(a.mean(), a.std(ddof=1), 4, b.mean(), b.std(ddof=1), 3)
    assert summary == pytest.approx(welch_difference(a, b))
    assert welch_from_summary(97.0, 0.1, 4, 96.0, 0.0, 1) is None
