"""The paper's claims side by side with what a run measured, each with its interval, p-value and verdict, read
from the tables that test them: curvature tests (Fig. 7), maturation (Fig. 5), spectra (Fig. 8), the summary's
per-seed values (Fig. 4d), CIFAR-10-C (Fig. 9) and Table 1."""
from __future__ import annotations

import csv

import numpy as np

from .analysis import binomial_power, ties_text
from .comparison import finite, read_values
from .tables import difference_cells, holm, paired_difference, read_interval, welch_difference, write_table

# per architecture: the paper's words, the side of 1/2 it puts the fraction negative on, whether it called it
# significant, and the fraction it reports; for the MLP, the one its p on 24 trials implies (7 of 24 give 0.064)
PAPER_CURVATURE = {"cnn": ("78% negative, p = 0.007", 1, True, 0.78),
                   "mlp": ("mostly positive, p = 0.06", -1, False, 7 / 24)}
PAPER_ARCHS, PAPER_BASELINES = ("mlp", "cnn"), ("relu", "arg1")
VERSUS_BASELINES = {  # metric: claim, the paper's words, and how a significant difference reads either way
    "early_acc": ("learns faster (early test accuracy)", "learns faster than ReLU and 1-arg (Fig. 4d)", "faster",
                  "slower"),
    "test_acc": ("performs better (session-III test accuracy)",
                 "better asymptotic accuracy than ReLU and 1-arg (Fig. 4d, abstract)", "better", "worse")}


def read_rows(path: str | None) -> list[dict]:
    if not path:
        return []
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _find(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == str(v) for k, v in match.items())), None)


def against_paper(estimate: float, verdict: str, expected: int, paper_significant: bool = True) -> str:
    """How a measured result stands to the paper's, which puts ``estimate`` (a difference, or a fraction less 1/2)
    on the ``expected`` side of 0 (+1 above, -1 below), significantly unless ``paper_significant`` is False.
    Significance is the source table's ``verdict`` (decided on the unrounded p), so the two cells never disagree;
    where neither is significant, a lean to the other side than the paper's is said. The side is the sign bit of
    ``estimate``, so a significant difference printed as ``-0.00`` keeps its side; an infinite one has one."""
    if verdict.startswith("not significant"):
        if paper_significant:
            return "not shown (not significant here)"
        other_side = np.isfinite(estimate) and np.sign(estimate) == -expected
        return "agrees (not significant, as in the paper)" + ("; leans the other way" if other_side else "")
    if not verdict.endswith("p < 0.05") or np.isnan(estimate):  # n/a: too few seeds
        return ""
    return "agrees" if np.copysign(1, estimate) == expected else "contradicts"


def _midpoint(cell: str) -> float:
    """The centre of a symmetric interval cell (Welch, paired t): its difference, with the sign of bounds that
    round to zero."""
    bounds = read_interval(cell)
    return (bounds[0] + bounds[1]) / 2 if bounds else float("nan")


def _claim(claim: str, paper: str, measured: str, interval: str, p: str, verdict: str, source: str,
           vs_paper: str, paper_value: float = float("nan"), power: float = float("nan")) -> dict:
    """One row; ``paper_value`` is the paper's number on ``interval``'s scale where it gives one, and ``power``
    the chance this run's test had of showing an effect that large."""
    bounds = read_interval(interval)
    where = ("" if bounds is None or not np.isfinite(paper_value)
             else "inside" if bounds[0] <= paper_value <= bounds[1] else "outside")
    return {"claim": claim, "paper": paper, "measured": measured, "interval95": interval, "p": p, "p_holm": "",
            "verdict": verdict, "vs_paper": vs_paper,
            "paper_value": f"{paper_value:.4g}" if np.isfinite(paper_value) else "", "paper_in_ci95": where,
            "power_at_paper": f"{power:.2f}" if np.isfinite(power) else "", "source": source}


def _p(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:  # "", "n/a"
        return float("nan")


def adjust_for_the_family(rows: list[dict]) -> str:
    """Fill each claim's ``p_holm``: Holm's adjustment over every claim of the table with a p-value, since a
    run tests them all at once. Returns a note counting the claims significant before and after."""
    p = [_p(r["p"]) for r in rows]
    adjusted = holm(p)
    for r, q in zip(rows, adjusted):
        r["p_holm"] = f"{q:.3g}" if np.isfinite(q) else ""
    tested = sum(np.isfinite(adjusted))
    # by the verdicts, decided on the unrounded p, so that a p of 0.04996 shown as 0.05 still counts
    raw = sum(r["verdict"].endswith("p < 0.05") for r in rows)
    after = sum(q < 0.05 for q in adjusted if np.isfinite(q))
    return (f"p_holm: Holm's step-down adjustment over the {tested} claims with a p-value (family-wise error 5%, "
            f"from the p shown, 3 significant digits): p < 0.05 in {raw} of them, p_holm < 0.05 in {after}. "
            "A claim significant by p alone may be one of the chance findings expected among this many tests.")


def curvature_claims(rows: list[dict]) -> list[dict]:
    out = []
    for arch, (paper, expected, significant, fraction) in PAPER_CURVATURE.items():
        r = _find(rows, kind="learned", arch=arch, dataset="all")
        if r:
            k, n, ties = int(r["k_negative"]), int(r["n"]), ties_text(r)
            units = int(r.get("n_starts") or n)  # tables written before starts were units: one per function
            more_negative = k / n - 0.5 if n else float("nan")
            measured = (f"{k}/{n} negative" + (f" ({ties}, left out)" if ties else "")
                        + (f"; {units} independent starts" if units != n else ""))
            out.append(_claim(f"learned 2-arg {arch.upper()} nonlinearities: sign of curvature", paper,
                              measured, f"[{r['ci95_low']}, {r['ci95_high']}]",
                              r["p_two_sided"], r["verdict"], "curvature_tests (binomial, Clopper-Pearson)",
                              against_paper(more_negative, r["verdict"], expected, significant),
                              fraction, binomial_power(units, fraction)))
    return out


def architecture_claims(rows: list[dict]) -> list[dict]:
    """The paper sets its CNN nonlinearities (78% negative) "in contrast" to its MLP ones (more positive; 7 of 24 by
    its p) without testing the difference. A run's CNN and MLP nets of one seed grow from one session-I net, so the
    test pairs them (McNemar's, of the pairs whose signs differ, a start's pairs together), where a run has both."""
    r = _find(rows, kind="learned", arch="all", dataset="all")
    if not (r and r.get("cnn_vs_mlp_verdict")):
        return []
    cnn, mlp = int(r["cnn_only_negative"]), int(r["mlp_only_negative"])
    return [_claim("learned 2-arg nonlinearities: the CNN's more often negative (XOR-like) than the MLP's",
                   "CNN 78% negative; \"in contrast\", MLP more positive (Sec. 4.3; the difference not tested)",
                   f"{r['cnn_mlp_pairs']} CNN-MLP pairs from one start: CNN alone negative in {cnn}, MLP alone "
                   f"in {mlp}", r["cnn_vs_mlp_ci95"], r["cnn_vs_mlp_p"], r["cnn_vs_mlp_verdict"],
                   "curvature_tests (paired by start, McNemar; interval: the share of differing pairs where the "
                   "CNN's is the negative one)",
                   against_paper(cnn / (cnn + mlp) - 0.5 if cnn + mlp else float("nan"), r["cnn_vs_mlp_verdict"], 1))]


def start_claims(rows: list[dict]) -> list[dict]:
    """The paper calls the curvature learned, which needs session II to have moved it from where session I left
    it, towards the paper's side. Two tests of each learned function against its own start: McNemar's of the
    signs, which only counts the functions that crossed zero, and a paired t of the normalised curvature, which
    also sees those that moved without crossing."""
    out = []
    for arch, (_, expected, _, _) in PAPER_CURVATURE.items():
        r = _find(rows, kind="learned", arch=arch, dataset="all")
        if not r or not r.get("change_verdict"):
            continue
        changed = int(r["to_negative"]) + int(r["to_positive"])
        side = "negative (XOR-like)" if expected > 0 else "positive (elliptic)"
        # no sign crossed zero: every start kept its sign, which is the claim not shown rather than untestable
        kept = "" if changed else "not shown (no sign changed)"
        paper = f"the shapes are learned (implied; the paper does not compare the session-I starts), towards {side}"
        claim = f"learned 2-arg {arch.upper()} nonlinearities: "
        out.append(_claim(claim + "curvature sign learned in session II, not kept from session I", paper,
                          f"{r['k_negative_at_start']} -> {r['k_negative']} negative; {r['to_negative']} turned "
                          f"negative, {r['to_positive']} positive", r["change_ci95"], r["change_p"],
                          r["change_verdict"], "curvature_tests (learned vs start, McNemar)",
                          kept or against_paper(int(r["to_negative"]) / changed - 0.5, r["change_verdict"],
                                                expected)))
        mean = _midpoint(r["curvature_change_ci95"])
        if np.isfinite(mean):
            out.append(_claim(claim + f"session II moves the curvature towards {side}", paper,
                              f"normalised curvature, learned minus start: {mean:+.3f} on average",
                              r["curvature_change_ci95"], r["curvature_change_p"], r["curvature_change_verdict"],
                              "curvature_tests (learned minus start, paired t)",
                              against_paper(-mean, r["curvature_change_verdict"], expected)))
    return out


def quadratic_claims(rows: list[dict]) -> list[dict]:
    """Fig. 7e and 5b: Xavier-initialised inner nets are "far from the regular quadratic patterns observed in the
    learned nonlinearities" and "instead evolve to display such smooth quadratic patterns", as the quadratic fit's
    R² against the untrained Xavier nets', over all settings."""
    xavier = _find(rows, kind="xavier-init", arch="all", dataset="all")
    out = []
    for kind, claim, paper in (
            ("learned", "learned 2-arg nonlinearities: closer to a quadratic than Xavier-initialised ones (Fig. 7e)",
             "Xavier inits 'far from the regular quadratic patterns' of learned ones"),
            ("xavier-trained", "Xavier-initialised 2-arg nets: closer to a quadratic after session II (Fig. 5b)",
             "they 'evolve to display such smooth quadratic patterns'")):
        r = _find(rows, kind=kind, arch="all", dataset="all")
        if r and xavier and r["r2_verdict"]:
            measured = f"mean R² {r['r2_mean'] or 'n/a'}, untrained Xavier {xavier['r2_mean'] or 'n/a'}"
            out.append(_claim(claim, paper, measured, r["r2_vs_xavier_init_ci95"], r["r2_vs_xavier_init_p"],
                              r["r2_verdict"],
                              f"curvature_tests (quadratic fit R², {r.get('r2_vs_xavier_init_test') or 'Welch'})",
                              against_paper(_midpoint(r["r2_vs_xavier_init_ci95"]), r["r2_verdict"], 1)))
    return out


def maturation_claims(rows: list[dict]) -> list[dict]:
    """Fig. 5: learned 2-arg nonlinearities "mature ... within 1-5 epoch in general", as most runs over all
    settings."""
    r = _find(rows, kind="learned", n_args=2, arch="all", dataset="all")
    if not r:
        return []
    short = int(r["n_short"])
    measured = (f"{r['k_mature']}/{r['n']} matured by epoch {r['by_epoch']}"
                + (f" (+{short} whose best epoch came by then, left out)" if short else "")
                + f"; median epoch {r['median_mature_epoch']} of a best epoch {r['median_best_epoch']}")
    tested = r["n"] != "0"  # else no run could fail: no interval, no p
    return [_claim("learned 2-arg nonlinearities: take their final shape early (Fig. 5)",
                   "mature within 1-5 epochs in general", measured,
                   f"[{r['ci95_low']}, {r['ci95_high']}]" if tested else "", r["p_two_sided"] if tested else "",
                   r["verdict"], "maturation (binomial, Clopper-Pearson)",
                   against_paper(float(r["fraction_mature"]) - 0.5, r["verdict"], 1))]


def spectra_claims(rows: list[dict]) -> list[dict]:
    """Fig. 8: learned functions hold more power at l = 2 and less at l = 1 than Xavier-initialised ones (Welch);
    and, which "learned" implies, than their own session-I starts held (paired t)."""
    out = []
    for n_args in (2, 3):
        for l, paper, expected in ((2, "learned: more power at l = 2 (quadrupole)", 1),
                                   (1, "Xavier: more power at l = 1", -1)):
            r = _find(rows, kind="learned", n_args=n_args, arch="all", dataset="all", l=l)
            for kind, name, short, prefix, verdict_key, test in (
                    ("xavier-init", "Xavier-initialised", "Xavier", "vs_xavier_init_", "verdict", "Welch"),
                    ("start", "their session-I starts", "starts", "vs_start_", "vs_start_verdict", "paired t")):
                other = _find(rows, kind=kind, n_args=n_args, arch="all", dataset="all", l=l)
                if not (r and other and r.get(verdict_key)):
                    continue
                out.append(_claim(f"{n_args}-arg spectra, learned vs {name}: share of power at l = {l}",
                                  paper if kind == "xavier-init" else f"{paper} (implied: learned in session II)",
                                  f"learned {r['power_fraction_mean']} (n = {r['n']}), {short} "
                                  f"{other['power_fraction_mean']} (n = {other['n']})", r[f"{prefix}ci95"],
                                  r[f"{prefix}p"], r[verdict_key], f"spectra ({test})",
                                  against_paper(_midpoint(r[f"{prefix}ci95"]), r[verdict_key], expected)))
    return out


def _weakest_against(tests: dict[str, dict | None]) -> str:
    """The baseline a claim of beating them all is weakest against: the largest one-sided p of 2-arg ahead (an
    untestable one in the middle). The claim is shown only if shown against it, an intersection-union test, and a
    significant shortfall against any baseline is the one it names."""
    def p_ahead(name: str) -> float:
        t = tests[name]
        if t is None or not np.isfinite(t["p"]):
            return 0.5
        return t["p"] / 2 if t["diff"] > 0 else 1 - t["p"] / 2
    return max(tests, key=p_ahead)


def baseline_claims(values: dict[tuple, dict[str, list[float]]]) -> list[dict]:
    """Fig. 4d and the abstract: 2-arg nets learn faster and perform better than ReLU and 1-arg nets of matched
    size. Tested per setting against the baseline the claim is weakest against, since it needs both beaten."""
    out = []
    for metric, (claim, paper, ahead, behind) in VERSUS_BASELINES.items():
        for dataset, arch in sorted({(d, a) for d, a, _ in values if a in PAPER_ARCHS}):
            got = {act: v for act in ("arg2", *PAPER_BASELINES)
                   if (v := finite(values.get((dataset, arch, act), {}), metric))}
            rivals = [a for a in PAPER_BASELINES if a in got]
            if "arg2" not in got or not rivals:
                continue
            tests = {a: welch_difference(got["arg2"], got[a]) for a in rivals}
            rival = _weakest_against(tests)
            test = tests[rival]
            cells = difference_cells(test, f"2-arg {ahead} than {rival}", f"2-arg {behind} than {rival}")
            measured = ", ".join(f"{a} {np.mean(got[a]):.2f}% (n = {len(got[a])})" for a in ("arg2", rival))
            out.append(_claim(f"{dataset} {arch.upper()}: 2-arg {claim}", paper, measured, *cells,
                              f"summary_values ({metric}, Welch)", against_paper(test["diff"], cells[2], 1)
                              if test else ""))
    return out


def retraining_claims(values: dict[tuple, dict[str, list[float]]]) -> list[dict]:
    """Sec. 3: with the learned nonlinearity frozen and the outer net re-initialised, session III's training is
    "not qualitatively different" from session II's, so the nonlinearity's learning could end early. Tested as
    session III's best-epoch test accuracy against session II's, paired by seed, per setting: a significant
    shortfall contradicts; no significant difference agrees only as far as the seeds can tell."""
    out = []
    for (dataset, arch, act), v in sorted(values.items()):
        third, second = v.get("test_acc", []), v.get("session2_acc", [])
        if act != "arg2" or arch not in PAPER_ARCHS or not second or len(third) != len(second):
            continue
        test = paired_difference(third, second)
        cells = difference_cells(test, "session III higher", "session III lower", name="paired t")
        measured = f"session III {np.mean(third):.2f}%, session II {np.mean(second):.2f}% (n = {len(third)} seeds)"
        out.append(_claim(f"{dataset} {arch.upper()}: retrained on the frozen 2-arg nonlinearity, session III reaches "
                          "session II's accuracy", "session III curves 'not qualitatively different' (Sec. 3)",
                          measured, *cells, "summary_values (test_acc vs session2_acc, paired t)",
                          against_paper(test["diff"], cells[2], 1, paper_significant=False) if test else ""))
    return out


def corruption_claims(rows: list[dict]) -> list[dict]:
    """The mCE and the relative mCE of the 2-arg CNN, each below ReLU's 100% in the paper."""
    r = _find(rows, arch="cnn", activation="arg2", corruption="mCE")
    if not r:
        return []
    out = []
    for metric, name, paper, value in (("mce", "mCE", 91.3, "ce_pct"),
                                       ("relative_mce", "relative mCE", 99.5, "relative_ce_pct")):
        verdict = r[f"{metric}_verdict"]
        if verdict:
            out.append(_claim(f"CIFAR-10-C: 2-arg CNN {name} against ReLU's (100%)", f"{name} {paper}%",
                              f"{name} {r[value]}%", r[f"{metric}_vs_relu_ci95"], r[f"{metric}_vs_relu_p"], verdict,
                              "cifar10c (Welch)", against_paper(_midpoint(r[f"{metric}_vs_relu_ci95"]), verdict, -1),
                              paper - 100.0))
    return out


def robustness_claims(rows: list[dict]) -> list[dict]:
    return [_claim(f"{r['dataset']} {r['arch'].upper()}: 2-arg minus ReLU robust accuracy (AutoAttack)",
                   f"{r['paper_increment']} points" if r["paper_increment"] else "",
                   f"{r['increment_vs_relu']} points ({r['attacks']})", r["increment_ci95"], r["increment_p"],
                   r["verdict"], "table1 (Welch)",
                   against_paper(_midpoint(r["increment_ci95"]), r["verdict"],
                                 int(np.sign(float(r["paper_increment"]))))
                   if r["paper_increment"] else "",
                   float(r["paper_increment"]) if r["paper_increment"] else float("nan"))
            for r in rows if r["activation"] == "arg2"]


def write_claims(out: str, scale: str, curvature: str, spectra: str, summary_values: str,
                 cifar10c: str | None = None, table1: str | None = None, maturation: str | None = None,
                 session_epochs: tuple[int, int] | None = None) -> list[dict]:
    """The claims table. ``session_epochs`` (sessions II and III's maximum epochs): session III is set against
    session II only where it may train at least as long, as in the paper (200 and 400)."""
    values = read_values(summary_values)
    fair = session_epochs is None or session_epochs[1] >= session_epochs[0]
    curvature_rows = read_rows(curvature)
    rows = (curvature_claims(curvature_rows) + architecture_claims(curvature_rows) + start_claims(curvature_rows)
            + quadratic_claims(curvature_rows)
            + maturation_claims(read_rows(maturation)) + spectra_claims(read_rows(spectra)) + baseline_claims(values)
            + (retraining_claims(values) if fair else []) + corruption_claims(read_rows(cifar10c))
            + robustness_claims(read_rows(table1)))
    family = adjust_for_the_family(rows)
    unfair = [] if fair else ["Session III is not set against session II: it may train for fewer epochs here (maximum "
                              f"epochs: session II {session_epochs[0]}, session III {session_epochs[1]})."]
    write_table(rows, out, f"The paper's claims against this run ({scale})",
                notes=["Each row is read from the table named in `source`, where the full test lives; interval95 "
                       "is a 95% interval of the measured fraction or difference, p its two-sided p-value. A "
                       "verdict is only as good as the run's scale and seed count: read it with the scale above.",
                       family,
                       "vs_paper: agrees (significant, on the paper's side), contradicts (significant, on the other "
                       "side), or not shown (not significant here, where the paper reports an effect); the paper's "
                       "MLP curvature, which it calls not significant, agrees when it is not significant here either.",
                       "paper_value: the paper's number on interval95's scale, where it reports one (the fraction "
                       "negative, 0.78 for CNNs and for MLPs 7/24, which its p = 0.06 on 24 trials implies; mCE and "
                       "relative mCE less 100; Table 1's increment); paper_in_ci95: whether the interval holds it "
                       "(outside: this run's result differs from the paper's in size, whatever vs_paper says of its "
                       "direction); power_at_paper: for the binomial tests, the chance a run of this n finds p < "
                       "0.05 if the paper's fraction were the truth, so a 'not shown' with low power says little.",
                       "'Learns faster' and 'performs better' test 2-arg against whichever of ReLU and 1-arg, the "
                       "paper's baselines, the claim is weakest against in each setting (the larger one-sided p of "
                       "2-arg ahead): it agrees only if both are beaten, and contradicts if either is significantly "
                       "ahead. The summary ranks every design, related ones included.", *unfair])
    return rows
