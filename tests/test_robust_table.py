
from multiarg.robust_table import table1_rows, write_table1


def _result(activation, seed, robust, clean=0.9, complete=True):
    return {"dataset": "mnist", "arch": "cnn", "activation": activation, "seed": seed, "eps": 0.3, "n": 100,
            "robust_accuracy": robust, "clean_accuracy": clean, "attacks": ["apgd-ce", "apgd-t", "fab-t", "square"],
            "complete": complete, "data_note": ""}


def test_table1_means_spread_and_increment():
    rows = {r["activation"]: r for r in table1_rows(
        [_result("arg2", 0, 0.50), _result("arg2", 1, 0.40), _result("relu", 0, 0.10), _result("relu", 1, 0.20)])}
    assert rows["arg2"]["robust_acc"] == "45.00" and rows["arg2"]["robust_sd"] == "7.07"
    # 45 - 15 = +30; SD of the difference of means: sqrt(7.07^2/2 + 7.07^2/2) = 7.07
    assert rows["arg2"]["increment_vs_relu"] == "+30.00 ± 7.07"
    assert rows["arg2"]["paper_robust_acc"] == "49.25" and rows["arg2"]["paper_increment"] == "+39.92"
    assert rows["relu"]["increment_vs_relu"] == ""


def test_table1_files_say_when_the_attack_was_a_subset(tmp_path):
    import json

    paths = []
    for i, r in enumerate([_result("arg2", 0, 0.3, complete=False), _result("relu", 0, 0.2, complete=False)]):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(r))
    rows = write_table1([str(p) for p in paths], str(tmp_path / "table1.csv"), "TEST")
    assert rows[0]["increment_vs_relu"] == "+10.00 ± n/a (one seed)"
    assert "NOT the standard AutoAttack" in (tmp_path / "table1.md").read_text()
    tex = (tmp_path / "table1.tex").read_text()
    assert tex.count("\\\\") == 3 and "30.00 $\\pm$ n/a" in tex


