"""The claims table reads each claim's test from the tables the pipeline writes."""
import numpy as np

from multiarg.claims import write_claims
from multiarg.comparison import rank_rows
from multiarg.nonlinearities import curvature_rows, spectra_rows
from multiarg.robust_table import table1_rows
from multiarg.tables import write_table


def _function(kind, arch, curvature, l2):
    return {"kind": kind, "n_args": 2, "arch": arch, "dataset": "mnist", "curvature": curvature,
            "curvature_other_weighting": curvature, "r2": 0.9, "saddle_share_l2": 0.8,
            "spectrum_fraction": np.array([0.0, 1 - l2, l2]), "spectrum": np.array([1.0, 1 - l2, l2])}


def _robust(activation, seed, robust):
    return {"dataset": "mnist", "arch": "cnn", "activation": activation, "seed": seed, "eps": 0.3, "n": 100,
            "robust_accuracy": robust, "clean_accuracy": 0.9, "attacks": ["apgd-ce"], "complete": True,
            "data_note": ""}


def test_claims_carry_each_tests_interval_p_and_verdict(tmp_path):
    functions = ([_function("learned", "cnn", -1.0, 0.7 + 0.01 * s) for s in range(12)]
                 + [_function("learned", "mlp", 1.0, 0.7) for _ in range(12)]
                 + [_function("xavier-init", "cnn", 1.0, 0.1 + 0.01 * s) for s in range(6)])
    early = {("mnist", "cnn", a): {"test_acc": [90.0, 91.0], "early_acc": v}
             for a, v in (("arg2", [80.0, 81.0]), ("relu", [60.0, 61.0]))}
    tables = {"curvature": curvature_rows(functions), "spectra": spectra_rows(functions),
              "summary": rank_rows(early),
              "table1": table1_rows([_robust(a, s, r + 0.01 * s) for s in range(4) for a, r in (("arg2", 0.5),
                                                                                                ("relu", 0.1))])}
    for name, rows in tables.items():
        write_table(rows, str(tmp_path / f"{name}.csv"), name)
    rows = write_claims(str(tmp_path / "claims.csv"), "TEST", **{k: str(tmp_path / f"{k}.csv") for k in tables})
    by = {r["claim"]: r for r in rows}
    cnn = by["learned 2-arg CNN nonlinearities: sign of curvature"]
    assert cnn["measured"] == "12/12 negative" and cnn["verdict"].startswith("mostly negative")
    assert by["learned 2-arg MLP nonlinearities: sign of curvature"]["verdict"].startswith("mostly positive")
    l2 = by["2-arg spectra, learned vs Xavier-initialised: share of power at l = 2"]
    assert l2["verdict"] == "learned more at l = 2, Welch p < 0.05" and l2["interval95"].startswith("[+")
    speed = by["mnist CNN: 2-arg learns faster (early test accuracy)"]
    assert speed["verdict"] == "2-arg faster than relu, Welch p < 0.05"
    robust = by["mnist CNN: 2-arg minus ReLU robust accuracy (AutoAttack)"]
    assert robust["verdict"] == "2-arg more robust, Welch p < 0.05"
    assert not any("CIFAR-10-C" in c for c in by)  # not run: no claim, rather than an empty one
    assert "The paper's claims" in (tmp_path / "claims.md").read_text()
