import pytest
import torch
from torch import nn

from multiarg.robustness import corruption_errors, evaluate_corrupted, mce, relative_ce, seed_summary

MODEL = {"fog": {1: 0.1, 2: 0.2}, "snow": {1: 0.3, 2: 0.5}}
REF = {"fog": {1: 0.2, 2: 0.3}, "snow": {1: 0.4, 2: 0.4}}


def test_ce_and_mce_by_hand():
    ce = corruption_errors(MODEL, REF)
    assert ce == pytest.approx({"fog": 0.3 / 0.5, "snow": 0.8 / 0.8})
    assert mce(ce) == pytest.approx(0.8)


def test_mce_is_the_mean_not_the_median():
    assert mce({"fog": 0.5, "snow": 0.6, "glass_blur": 1.0}) == pytest.approx(0.7)


def test_relative_ce_by_hand():
    rce = relative_ce(MODEL, 0.05, REF, 0.1)
    # fog: (0.05 + 0.15) / (0.1 + 0.2); snow: (0.25 + 0.45) / (0.3 + 0.3)
    assert rce == pytest.approx({"fog": 0.2 / 0.3, "snow": 0.7 / 0.6})
    assert mce(rce) == pytest.approx((0.2 / 0.3 + 0.7 / 0.6) / 2)


def test_reference_scores_100_percent():
    assert corruption_errors(REF, REF) == {"fog": 1.0, "snow": 1.0}
    assert mce(relative_ce(REF, 0.1, REF, 0.1)) == pytest.approx(1.0)


def test_json_severity_keys():
    as_json = {c: {str(s): e for s, e in row.items()} for c, row in MODEL.items()}
    assert corruption_errors(as_json, REF) == corruption_errors(MODEL, REF)


def test_invalid_denominators_and_tables():
    with pytest.raises(ValueError, match="relative CE.*<= 0.*fog"):
        relative_ce(MODEL, 0.05, REF, 0.3)  # fog: (0.2 - 0.3) + (0.3 - 0.3) < 0
    with pytest.raises(ValueError, match="CE.*<= 0"):
        corruption_errors(MODEL, {"fog": {1: 0, 2: 0}, "snow": {1: 0.4, 2: 0.4}})
    with pytest.raises(ValueError, match="different or no corruptions"):
        corruption_errors(MODEL, {"fog": REF["fog"]})
    with pytest.raises(ValueError, match="severities"):
        corruption_errors(MODEL, {"fog": {1: 0.2}, "snow": REF["snow"]})


def test_seed_summary_by_hand():
    refs = [{"clean": 0.1, "corrupted": {"fog": {1: 0.2, 2: 0.4}}},
            {"clean": 0.1, "corrupted": {"fog": {1: 0.4, 2: 0.6}}}]  # mean reference: sum 0.8, clean 0.1
    runs = [{"clean": 0.05, "corrupted": {"fog": {1: 0.2, 2: 0.2}}},
            {"clean": 0.05, "corrupted": {"fog": {"1": 0.4, "2": 0.4}}}]
    out = seed_summary(runs, refs)
    sd = 0.5 ** 0.5 / 2  # sample SD of two values 0.5 apart
    assert out["ce"]["fog"] == pytest.approx({"mean": 0.75, "sd": sd})  # 0.4/0.8, 0.8/0.8
    assert out["mce"]["values"] == pytest.approx([0.5, 1.0])
    assert (out["mce"]["mean"], out["mce"]["sd"]) == pytest.approx((0.75, sd))
    # (0.4 - 0.1) / (0.8 - 0.2) = 0.5 and (0.8 - 0.1) / 0.6
    assert out["relative_mce"]["mean"] == pytest.approx((0.5 + 0.7 / 0.6) / 2)
    assert out["n_seeds"] == 2 and out["n_reference_seeds"] == 2
    own = seed_summary(refs, refs)  # the reference against itself: exactly 100% on average
    assert own["mce"]["mean"] == pytest.approx(1.0) and own["relative_mce"]["mean"] == pytest.approx(1.0)
    assert own["mce"]["sd"] > 0
    assert seed_summary(runs[:1], refs)["mce"]["sd"] == 0.0


class _Threshold(nn.Module):
    """Class 1 when the mean input exceeds 0.5: only right if images are scaled to [0, 1]."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], 1)


def test_evaluate_corrupted():
    images = torch.cat([torch.full((4, 3, 32, 32), 100), torch.full((4, 3, 32, 32), 200)]).to(torch.uint8)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    model = _Threshold().train()
    assert evaluate_corrupted(model, images, labels, batch_size=3, device="cpu") == pytest.approx(1 / 8)
    assert model.training
    with pytest.raises(ValueError, match="labels"):
        evaluate_corrupted(model, images, labels[:3], 3, "cpu")
