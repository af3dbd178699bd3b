"""Table 1: AutoAttack on the adversarially trained networks, per dataset x architecture x activation."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import data
from .io import write_json, write_text
from .runtime import resolve_device
from .tables import difference_cells, mean_sd, welch_difference, write_table

ATTACK_SETTINGS = ("eps", "n", "version", "attacks", "complete")
# Robust accuracy (%) printed in the paper's Table 1 (mean of 4 trials), for comparison only.
PAPER = {("mnist", "mlp"): {"arg2": 39.80, "arg1": 22.86, "relu": 26.74},
         ("mnist", "cnn"): {"arg2": 49.25, "arg1": 10.02, "relu": 9.33},
         ("cifar10", "mlp"): {"arg2": 4.83, "arg1": 5.62, "relu": 2.96},
         ("cifar10", "cnn"): {"arg2": 11.27, "arg1": 9.55, "relu": 8.57}}


def run_autoattack(model_path: Path, data_path: Path, out: Path, *, eps: float, version: str, attacks,
                   test_limit: int | None, split_seed: int, batch_size: int, device: str, seed: int) -> dict:
    """AutoAttack one network on the scored test images; writes the JSON result and AutoAttack's log."""
    from .adversarial import autoattack_eval
    from .sessions import load_model

    model, record = load_model(model_path)
    x, y = data.test_subset(data.load_prepared(data_path), test_limit, split_seed)
    result = autoattack_eval(model, x, y, eps, version=version, attacks=attacks, batch_size=batch_size,
                             device=resolve_device(device), seed=seed, log_path=Path(out).with_suffix(".log"))
    cfg = record["model_config"]
    result["attack_seed"] = result.pop("seed")  # "seed" names the network, as everywhere else
    result.update(dataset=record["dataset"], arch=cfg["arch"], activation=cfg["activation"],
                  seed=record["train_config"]["seed"], model=str(model_path), data_note=record["data_note"],
                  adversarial_training=record["adversarial"])
    write_json(result, out)
    return result


def _sd(sd: float, runs: list) -> str:
    return f"{sd:.2f}" if len(runs) > 1 else "n/a"


def table1_rows(results: list[dict]) -> list[dict]:
    """Robust and clean accuracy (%) mean and SD over seeds, the 2-arg - ReLU increment and the paper's values."""
    groups = defaultdict(list)
    for r in results:
        groups[r["dataset"], r["arch"], r["activation"]].append(r)
    rows = []
    for (dataset, arch, act), runs in sorted(groups.items()):
        relu = groups.get((dataset, arch, "relu"))
        # the increment sets 2-arg against ReLU, so both must have met the same attack
        for key in ATTACK_SETTINGS:
            for name, together in ((f"{dataset} {arch} {act}: its seeds", runs),
                                   (f"{dataset} {arch}: 2-arg and ReLU", runs + (relu or []) if act == "arg2" else [])):
                if len({repr(r.get(key)) for r in together}) > 1:
                    raise ValueError(f"{name} were attacked with different {key} "
                                     f"({sorted({repr(r.get(key)) for r in together})}); a mean or difference of them "
                                     "would describe no attack")
        robust = mean_sd([100 * r["robust_accuracy"] for r in runs])
        clean = mean_sd([100 * r["clean_accuracy"] for r in runs])
        row = {"dataset": dataset, "arch": arch, "activation": act, "eps": runs[0]["eps"], "seeds": len(runs),
               "images": runs[0]["n"], "robust_acc": f"{robust[0]:.2f}", "robust_sd": _sd(robust[1], runs),
               "clean_acc": f"{clean[0]:.2f}", "clean_sd": _sd(clean[1], runs),
               "attacks": "+".join(runs[0]["attacks"]) + ("" if runs[0]["complete"] else " (subset)"),
               "robust_after_each": " / ".join(f"{np.mean([100 * r['robust_accuracy_after'][a] for r in runs]):.2f}"
                                               for a in runs[0]["attacks"]),
               "increment_vs_relu": "", "increment_ci95": "", "increment_p": "", "verdict": "", "paper_robust_acc": "",
               "paper_increment": ""}
        paper = PAPER.get((dataset, arch), {})
        if act in paper:
            row["paper_robust_acc"] = f"{paper[act]:.2f}"
        if act == "arg2" and relu:
            # seeds of different models are independent: the SD of a difference of means adds the variances
            r2 = [100 * r["robust_accuracy"] for r in runs]
            rr = [100 * r["robust_accuracy"] for r in relu]
            test = welch_difference(r2, rr)
            spread = f"{test['se']:.2f}" if test else "n/a (one seed)"
            row["increment_vs_relu"] = f"{np.mean(r2) - np.mean(rr):+.2f} ± {spread}"
            row["increment_ci95"], row["increment_p"], row["verdict"] = difference_cells(
                test, "2-arg more robust", "ReLU more robust")
            paper = PAPER.get((dataset, arch))
            row["paper_increment"] = f"{paper['arg2'] - paper['relu']:+.2f}" if paper else ""
        rows.append(row)
    return rows


def _latex(rows: list[dict], scale: str) -> str:
    lines = [f"% Table 1 ({scale}); robust accuracy (%) under AutoAttack, mean $\\pm$ SD over seeds",
             "\\begin{tabular}{llllll}", "\\hline",
             "dataset & arch & activation & robust acc. & 2-arg $-$ ReLU & paper \\\\", "\\hline"]
    for r in rows:
        inc = r["increment_vs_relu"].replace("±", "$\\pm$")
        lines.append(f"{r['dataset']} & {r['arch'].upper()} & {r['activation']} & {r['robust_acc']} $\\pm$ "
                     f"{r['robust_sd']} & {inc} & {r['paper_robust_acc']} \\\\")
    return "\n".join(lines + ["\\hline", "\\end{tabular}", ""])


def write_table1(paths: list[str], out: str, scale: str) -> list[dict]:
    results = [json.loads(Path(p).read_text()) for p in paths]
    rows = table1_rows(results)
    complete = all(r["complete"] for r in results)
    versions = " and ".join(sorted({r.get("version", "standard") for r in results}))
    notes = ["robust_acc: accuracy (%) on the evaluated test images under AutoAttack (L-inf, eps as listed), mean "
             "and SD over seeds; increment_vs_relu: 2-arg minus ReLU mean, ± the SD of that difference of means; "
             "increment_ci95 and increment_p: Welch's t-test of that difference over the seeds; "
             "robust_after_each: robust accuracy (%) after each attack in turn, in the order of attacks, mean over "
             "seeds (each attack runs on the points still robust, so the steps are what each one adds); "
             "paper: Table 1 of the paper (4 trials, whole test set).",
             f"AutoAttack's {versions} version, every one of its attacks (the attacks column), via pyautoattack."
             if complete else
             "NOT the standard AutoAttack: only the attacks listed ran (a cheaper demo evaluation); robust "
             "accuracies are upper bounds of AutoAttack's."]
    notes += sorted({r["data_note"] for r in results if r["data_note"]})
    write_table(rows, out, f"Table 1: AutoAttack robust accuracy of adversarially trained networks ({scale})",
                notes=notes)
    write_text(_latex(rows, scale), Path(out).with_suffix(".tex"))
    return rows
