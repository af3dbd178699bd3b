"""The paper's claims side by side with what a run measured, each with its interval, p-value and verdict, read
from the tables that test them: curvature tests (Fig. 7), spectra (Fig. 8), the summary ranking (Fig. 4d),
CIFAR-10-C (Fig. 9) and Table 1."""
from __future__ import annotations

import csv

from .tables import write_table

PAPER_CURVATURE = {"cnn": "78% negative, p = 0.007", "mlp": "mostly positive, p = 0.06"}


def read_rows(path: str | None) -> list[dict]:
    if not path:
        return []
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _find(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == str(v) for k, v in match.items())), None)


def _claim(claim: str, paper: str, measured: str, interval: str, p: str, verdict: str, source: str) -> dict:
    return {"claim": claim, "paper": paper, "measured": measured, "interval95": interval, "p": p,
            "verdict": verdict, "source": source}


def curvature_claims(rows: list[dict]) -> list[dict]:
    out = []
    for arch, paper in PAPER_CURVATURE.items():
        r = _find(rows, kind="learned", arch=arch, dataset="all")
        if r:
            out.append(_claim(f"learned 2-arg {arch.upper()} nonlinearities: sign of curvature", paper,
                              f"{r['k_negative']}/{r['n']} negative", f"[{r['ci95_low']}, {r['ci95_high']}]",
                              r["p_two_sided"], r["verdict"], "curvature_tests (binomial, Clopper-Pearson)"))
    return out


def spectra_claims(rows: list[dict]) -> list[dict]:
    out = []
    for n_args in (2, 3):
        for l, paper in ((2, "learned: more power at l = 2 (quadrupole)"), (1, "Xavier: more power at l = 1")):
            r = _find(rows, kind="learned", n_args=n_args, arch="all", dataset="all", l=l)
            xavier = _find(rows, kind="xavier-init", n_args=n_args, arch="all", dataset="all", l=l)
            if r and xavier and r["verdict"]:
                out.append(_claim(f"{n_args}-arg spectra, learned vs Xavier-initialised: share of power at l = {l}",
                                  paper, f"learned {r['power_fraction_mean']} (n = {r['n']}), Xavier "
                                  f"{xavier['power_fraction_mean']} (n = {xavier['n']})", r["vs_xavier_init_ci95"],
                                  r["vs_xavier_init_p"], r["verdict"], "spectra (Welch)"))
    return out


def learning_speed_claims(rows: list[dict]) -> list[dict]:
    """Fig. 4d's "learn faster": the 2-arg net's early accuracy against the best other model of its setting."""
    out = []
    for setting in sorted({(r["dataset"], r["arch"]) for r in rows if r["early_acc"]}):
        ranked = sorted((r for r in rows if (r["dataset"], r["arch"]) == setting and r["early_acc_rank"]),
                        key=lambda r: int(r["early_acc_rank"]))
        arg2 = next((r for r in ranked if r["activation"] == "arg2"), None)
        if arg2 is None or len(ranked) < 2:
            continue
        if arg2["early_acc_rank"] == "1":
            rival = next(r for r in ranked if r["activation"] != "arg2")
            p, faster = rival["early_acc_p_vs_best"], True
        else:
            rival, p, faster = ranked[0], arg2["early_acc_p_vs_best"], False
        if not p:
            verdict = "n/a (fewer than two seeds)"
        elif float(p) >= 0.05:
            verdict = f"not significant against {rival['activation']} (Welch p >= 0.05)"
        else:
            verdict = f"2-arg {'faster than' if faster else 'slower than'} {rival['activation']}, Welch p < 0.05"
        out.append(_claim(f"{setting[0]} {setting[1].upper()}: 2-arg learns faster (early test accuracy)",
                          "2-arg learns faster than ReLU and 1-arg (Fig. 4d)",
                          f"2-arg {arg2['early_acc']}% (rank {arg2['early_acc_rank']} of {len(ranked)}), "
                          f"{rival['activation']} {rival['early_acc']}%", "", p, verdict, "summary (Welch)"))
    return out


def corruption_claims(rows: list[dict]) -> list[dict]:
    r = _find(rows, arch="cnn", activation="arg2", corruption="mCE")
    if not r or not r["verdict"]:
        return []
    return [_claim("CIFAR-10-C: 2-arg CNN mCE against ReLU's (100%)", "mCE 91.3%", f"mCE {r['ce_pct']}%",
                   r["mce_vs_relu_ci95"], r["mce_vs_relu_p"], r["verdict"], "cifar10c (Welch)")]


def robustness_claims(rows: list[dict]) -> list[dict]:
    return [_claim(f"{r['dataset']} {r['arch'].upper()}: 2-arg minus ReLU robust accuracy (AutoAttack)",
                   f"{r['paper_increment']} points" if r["paper_increment"] else "",
                   f"{r['increment_vs_relu']} points ({r['attacks']})", r["increment_ci95"], r["increment_p"],
                   r["verdict"], "table1 (Welch)")
            for r in rows if r["activation"] == "arg2"]


def write_claims(out: str, scale: str, curvature: str, spectra: str, summary: str, cifar10c: str | None = None,
                 table1: str | None = None) -> list[dict]:
    rows = (curvature_claims(read_rows(curvature)) + spectra_claims(read_rows(spectra))
            + learning_speed_claims(read_rows(summary)) + corruption_claims(read_rows(cifar10c))
            + robustness_claims(read_rows(table1)))
    write_table(rows, out, f"The paper's claims against this run ({scale})",
                notes=["Each row is read from the table named in `source`, where the full test lives; interval95 "
                       "is a 95% interval of the measured fraction or difference, p its two-sided p-value. A "
                       "verdict is only as good as the run's scale and seed count: read it with the scale above."])
    return rows
