import math

import pytest
import torch

from multiarg.inputs import InputHistogram, centers, mass_region


def test_histogram_counts_points_and_moments():
    h = InputHistogram(2, bins=4, extent=2.0)
    h.add(torch.tensor([[-1.5, -1.5], [0.5, 1.5], [0.5, 1.5], [3.0, 0.0]]))
    r = h.result()
    assert r["total"] == 4 and r["counts"].sum() == 3  # one point outside the histogram
    assert r["counts"][0, 0] == 1 and r["counts"][2, 3] == 2
    torch.testing.assert_close(r["mean"], torch.tensor([0.625, 0.375], dtype=torch.float64))


def test_99_percent_region_of_a_standard_gaussian_has_the_right_radius():
    torch.manual_seed(0)
    h = InputHistogram(2, bins=120, extent=6.0)
    for _ in range(20):
        h.add(torch.randn(200_000, 2))
    r = h.result()
    mask = mass_region(r["counts"], r["total"], 0.99)
    axis = centers(120, 6.0)
    radius = torch.sqrt(axis[:, None] ** 2 + axis[None, :] ** 2)[mask].max().item()
    expected = math.sqrt(-2 * math.log(0.01))  # 3.035: P(|x| > r) = exp(-r^2/2) for a 2-D standard normal
    assert radius == pytest.approx(expected, abs=0.15)
    held = r["counts"][mask].sum().item() / r["total"]
    assert 0.99 <= held < 0.995
