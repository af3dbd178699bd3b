"""Tables written as CSV with a Markdown rendering beside them."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .io import write_text


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample SD (NaN for a single value) of a list of per-seed numbers."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def welch_difference(a, b, level: float = 0.95) -> dict | None:
    """mean(a) - mean(b) of two independent groups of per-seed numbers, with its standard error, Welch's
    ``level`` confidence interval and two-sided p; None unless both groups have two or more values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(len(a), len(b)) < 2:
        return None
    return _welch(float(a.mean() - b.mean()), a.var(ddof=1) / len(a), b.var(ddof=1) / len(b), len(a), len(b), level)


def welch_from_summary(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int,
                       level: float = 0.95) -> dict | None:
    """``welch_difference`` from each group's mean, SD and size, as a summary table prints them."""
    if min(n_a, n_b) < 2:
        return None
    return _welch(mean_a - mean_b, sd_a**2 / n_a, sd_b**2 / n_b, n_a, n_b, level)


def _welch(diff: float, va: float, vb: float, n_a: int, n_b: int, level: float) -> dict:
    """Welch's t from the two means' squared standard errors, with the Welch-Satterthwaite degrees of freedom."""
    se = float(np.sqrt(va + vb))
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1)) if se else 1.0
    return _t_test(diff, se, df, level)


def _t_test(diff: float, se: float, df: float, level: float) -> dict:
    """A difference with its standard error as Student's t interval and two-sided p (``df`` degrees of freedom);
    a zero standard error gives a point interval and p 1 (no difference) or 0."""
    from scipy import stats

    if se == 0:
        return {"diff": diff, "se": 0.0, "ci_low": diff, "ci_high": diff, "p": 1.0 if diff == 0 else 0.0}
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    return {"diff": diff, "se": se, "ci_low": diff - half, "ci_high": diff + half,
            "p": float(2 * stats.t.sf(abs(diff) / se, df))}


def paired_difference(a, b, level: float = 0.95) -> dict | None:
    """mean(a - b) of paired per-seed numbers (``a[i]`` and ``b[i]`` from one seed), with its standard error, the
    paired t ``level`` confidence interval and two-sided p; None with fewer than two pairs."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) < 2:
        return None
    return _t_test(float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), len(d) - 1, level)


def regression(x, y, level: float = 0.95) -> dict | None:
    """Least-squares line of y on x: its slope and intercept, each with Student's ``level`` interval and two-sided p
    against 0 (n - 2 degrees of freedom), the slope's p against 1 as well, and Pearson's r; None with fewer than
    three points or a constant x."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return None
    fit, df = stats.linregress(x, y), len(x) - 2

    def tested(value: float, se: float) -> dict:
        return {("estimate" if k == "diff" else k): v for k, v in _t_test(value, se, df, level).items()}

    return {"n": len(x), "r": float(fit.rvalue), "slope": tested(float(fit.slope), float(fit.stderr)),
            "slope_p_vs_one": _t_test(float(fit.slope) - 1, float(fit.stderr), df, level)["p"],
            "intercept": tested(float(fit.intercept), float(fit.intercept_stderr))}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (family-wise error control, any dependence); NaN stays
    NaN and does not count towards the family's size."""
    p = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    steps = np.maximum.accumulate((len(order) - np.arange(len(order))) * p[order])
    out = p.copy()
    out[order] = np.minimum(steps, 1.0)
    return out.tolist()


def difference_cells(test: dict | None, positive: str, negative: str, digits: int = 2,
                     scale: float = 1.0, name: str = "Welch") -> tuple[str, str, str]:
    """A :func:`welch_difference` (or a test ``name``d otherwise) as table cells: its interval (times ``scale``, to
    ``digits`` decimals), its p, and a verdict, ``positive`` or ``negative`` by the sign of a significant
    difference, else not significant."""
    if test is None:
        return "", "", "n/a (fewer than two seeds)"
    if not np.isfinite(test["p"]):  # a NaN p would otherwise read as p < 0.05
        return "", "", "n/a (a value is not finite)"
    interval = f"[{scale * test['ci_low']:+.{digits}f}, {scale * test['ci_high']:+.{digits}f}]"
    verdict = (f"not significant ({name} p >= 0.05)" if test["p"] >= 0.05
               else f"{positive if test['diff'] > 0 else negative}, {name} p < 0.05")
    return interval, f"{test['p']:.3g}", verdict


def read_interval(cell: str) -> tuple[float, float] | None:
    """An interval cell as :func:`difference_cells` writes it, ``"[-1.14, -0.46]"``, as two floats; none for a cell
    without one (``""``, ``"n/a"``)."""
    try:
        low, high = (float(x) for x in cell.strip("[]").split(","))
    except ValueError:
        return None
    return low, high


def to_markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], csv_path: Path, title: str = "", notes: list[str] = ()) -> None:
    """Write ``rows`` to ``csv_path`` and a Markdown copy, ``notes`` below it, at ``csv_path.with_suffix('.md')``."""
    columns = list(rows[0]) if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(buf.getvalue(), csv_path)
    text = (f"# {title}\n\n" if title else "") + to_markdown(rows, columns) + "".join(f"\n{n}\n" for n in notes)
    write_text(text, Path(csv_path).with_suffix(".md"))


def parameter_table(args, out: Path) -> list[dict]:
    """Exact counts (and the paper's MLP formula) for every dataset x architecture x activation."""
    from .cli import model_config
    from .data import SHAPES
    from .params import exact_param_count, forward_flops, matched_widths, paper_mlp_param_count

    rows = []
    for dataset in args.datasets:
        for arch in ("mlp", "cnn"):
            args.arch, args.widths = arch, args.mlp_widths if arch == "mlp" else args.cnn_widths
            reference = model_config(args, dataset, args.match_to)
            ref_count = exact_param_count(reference)
            for activation in args.activations:
                matched = activation in args.matched
                cfg = model_config(args, dataset, activation) if matched else reference.replace(activation=activation)
                widened = matched_widths(reference, activation, args.widening)[1] if matched else ""
                count = exact_param_count(cfg)
                (channels, size, _), _classes = SHAPES[dataset]
                formula = (paper_mlp_param_count(channels * size * size, cfg.widths, cfg.n_classes, cfg.spec.n_args,
                                                 inner=cfg.spec.learned)
                           if arch == "mlp" and cfg.spec.design not in ("gamma", "dac") else "")  # the paper's models
                rows.append({"dataset": dataset, "arch": arch, "activation": activation,
                             "widths": "/".join(map(str, cfg.widths)),
                             "beta": widened if args.widening == "offset" else "",
                             "scale": widened if args.widening == "scale" else "", "params_exact": count,
                             "reference": args.match_to, "reference_params_exact": ref_count,
                             "mismatch": count - ref_count,
                             "mismatch_pct": f"{100 * (count - ref_count) / ref_count:+.2f}",
                             "params_paper_formula": formula, "mflops_forward": f"{forward_flops(cfg) / 1e6:.3f}"})
    write_table(rows, out, "Parameter counts (exact, from the built networks' formula) and matched widths",
                notes=[f"Matched widths (matching.widening: {args.widening}): "
                       + ("floor(sqrt(n) h_l) + beta, one integer beta for all layers (the paper's rule)"
                          if args.widening == "offset" else
                          "round(s h_l), one real s for all layers, which keeps the reference's shape (scale: the "
                          "widths' sum over the reference's)") + ".",
                       "mflops_forward: MFLOPs of one image's forward pass, 2 per multiply-add, inner-net evaluations "
                       "and DAC's per-connection add and relu included, elementwise work (LayerNorm, ReLU, pooling) "
                       "left out; parameter matching equalises parameters, not FLOPs (a -flops baseline equalises "
                       "mflops_forward instead)."])
    return rows
