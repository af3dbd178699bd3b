"""Corruption errors on CIFAR-10-C (Hendrycks & Dietterich, 2019; paper Sec. 4.5, Fig. 9).

An error table maps corruption -> severity -> top-1 error in [0, 1] (severity keys may be strings, as read
back from JSON). With E_sc the error at severity s of corruption c, and "ref" the reference model (CNN, ReLU):

    CE_c          = sum_s E_sc / sum_s E_sc(ref)
    relative CE_c = sum_s (E_sc - E_clean) / sum_s (E_sc(ref) - E_clean(ref))

mCE and relative mCE are their means over corruptions. The paper's typeset relative CE subtracts E_clean
once, outside the sum; like SPEC we use the benchmark's definition, which subtracts it at every severity.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .train import _to_input

ErrorTable = Mapping[str, Mapping[int | str, float]]


def _sums(errors: ErrorTable, reference: ErrorTable, clean: float = 0.0, reference_clean: float = 0.0,
          ) -> dict[str, tuple[float, float]]:
    """Per corruption: (sum_s (E - clean), sum_s (E_ref - clean_ref)), after checking both tables match."""
    if set(errors) != set(reference) or not errors:
        raise ValueError(f"model and reference tables cover different or no corruptions: {sorted(errors)} vs "
                         f"{sorted(reference)}")
    out = {}
    for c, row in errors.items():
        model = {int(s): float(e) for s, e in row.items()}
        ref = {int(s): float(e) for s, e in reference[c].items()}
        if set(model) != set(ref) or not model:
            raise ValueError(f"{c}: model severities {sorted(model)} differ from the reference's {sorted(ref)}")
        out[c] = (sum(model[s] - clean for s in model), sum(ref[s] - reference_clean for s in model))
    return out


def _ratios(sums: dict[str, tuple[float, float]], what: str) -> dict[str, float]:
    bad = {c: d for c, (_, d) in sums.items() if not d > 0}
    if bad:
        raise ValueError(f"{what}: the reference denominator is <= 0 for {bad}; the ratio is undefined (for "
                         f"relative CE: the reference's corrupted errors do not exceed its clean error)")
    return {c: n / d for c, (n, d) in sums.items()}


def corruption_errors(errors: ErrorTable, reference_errors: ErrorTable) -> dict[str, float]:
    """CE_c per corruption, as a fraction (1.0 = the reference's error)."""
    return _ratios(_sums(errors, reference_errors), "CE")


def relative_ce(errors: ErrorTable, clean: float, reference_errors: ErrorTable, reference_clean: float,
                ) -> dict[str, float]:
    """Relative CE_c per corruption: the error increase over clean, relative to the reference's increase."""
    return _ratios(_sums(errors, reference_errors, clean, reference_clean), "relative CE")


def mce(per_corruption: Mapping[str, float]) -> float:
    """Mean over corruptions of CE_c (or of relative CE_c: the relative mCE)."""
    if not per_corruption:
        raise ValueError("no corruptions to average")
    return float(np.mean(list(per_corruption.values())))


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def seed_summary(model_runs: Sequence[Mapping], reference_runs: Sequence[Mapping]) -> dict:
    """CE, relative CE, mCE and relative mCE over seeds, each as {"mean", "sd"} (sd with ddof=1, 0 for one seed);
    the mCE and relative mCE also keep their per-seed ``values``.

    A run is ``{"clean": float, "corrupted": ErrorTable}``, one per training seed. Pairing: the reference is
    the ReLU model's error averaged over its seeds (per corruption, severity and clean), and every model seed
    is scored against that one reference; mean and SD are over the model's seeds. The reference is a
    normaliser, not a paired condition: seeds of different models are independent, so matching seed i with
    seed i would only add the reference's seed noise to the spread and would need equal seed counts. Scored
    this way, the reference model's own runs get a mean CE and relative CE of exactly 100%.
    """
    if not model_runs or not reference_runs:
        raise ValueError("need at least one model run and one reference run")
    ref_clean = float(np.mean([r["clean"] for r in reference_runs]))
    first = reference_runs[0]["corrupted"]
    ref_table = {c: {int(s): float(np.mean([r["corrupted"][c][s] for r in reference_runs])) for s in row}
                 for c, row in first.items()}
    ce = [corruption_errors(r["corrupted"], ref_table) for r in model_runs]
    # Where the reference's error does not rise above its clean error (barely trained demo models), relative CE
    # is undefined: NaN there, and the relative mCE averages the corruptions where it is defined.
    rce = [{c: n / d if d > 0 else float("nan")
            for c, (n, d) in _sums(r["corrupted"], ref_table, float(r["clean"]), ref_clean).items()}
           for r in model_runs]
    defined = [c for c in rce[0] if all(np.isfinite(run[c]) for run in rce)]
    return {
        "ce": {c: _mean_sd([run[c] for run in ce]) for c in ce[0]},
        "relative_ce": {c: _mean_sd([run[c] for run in rce]) for c in rce[0]},
        "mce": {**_mean_sd(mces := [mce(run) for run in ce]), "values": mces},
        "relative_mce": {**_mean_sd(rmces := [np.mean([run[c] for c in defined]) if defined else float("nan")
                                              for run in rce]), "values": rmces},
        "relative_defined": len(defined),
        "n_seeds": len(model_runs), "n_reference_seeds": len(reference_runs),
    }


@torch.no_grad()
def evaluate_corrupted(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                       device: str | torch.device) -> float:
    """Top-1 error rate of ``model`` on uint8 images ``(N, 3, 32, 32)``, fed as floats in [0, 1] as in training."""
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(f"need as many labels as images (> 0), got {len(images)} images, {len(labels)} labels")
    was_training = model.training
    model.eval()
    wrong = 0
    try:
        for start in range(0, len(images), batch_size):
            x = _to_input(images[start:start + batch_size].to(device))
            y = labels[start:start + batch_size].to(device)
            wrong += int((model(x).argmax(1) != y).sum())
    finally:
        model.train(was_training)
    return wrong / len(images)
