"""The adaptive activation family of the related-work seed (adaptive activation in RNNs), per unit:

    gamma(x; n, s) = (1 - s) * softplus(n x) / n + s * sigmoid(n x)

with gain ``n > 0`` and saturation ``0 <= s <= 1``: ``s = 0`` is a softplus that tends to ReLU as n grows,
``s = 1`` a sigmoid. Both parameters are learned for every unit.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def gamma(x: torch.Tensor, n: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The family itself; finite for any finite ``x`` (softplus switches to its linear branch for large n x)."""
    return (1 - s) * F.softplus(n * x) / n + s * torch.sigmoid(n * x)


class AdaptiveActivation(nn.Module):
    """``gamma`` with a learned gain and saturation per unit along ``dim``.

    Constraints by construction: ``n = softplus(raw_n) + min_gain`` and ``s = sigmoid(raw_s)``, so every
    parameter value is admissible and gradients never vanish at a hard bound.
    """

    def __init__(self, units: int, dim: int = 1, gain: float = 1.0, saturation: float = 0.5,
                 min_gain: float = 1e-2):
        super().__init__()
        if gain <= min_gain or not 0 < saturation < 1:
            raise ValueError(f"need gain > {min_gain} and 0 < saturation < 1, got {gain}, {saturation}")
        self.dim, self.min_gain = dim, min_gain
        self.raw_gain = nn.Parameter(torch.full((units,), math.log(math.expm1(gain - min_gain))))
        self.raw_saturation = nn.Parameter(torch.full((units,), math.log(saturation / (1 - saturation))))

    def gain(self) -> torch.Tensor:
        return F.softplus(self.raw_gain) + self.min_gain

    def saturation(self) -> torch.Tensor:
        return torch.sigmoid(self.raw_saturation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return gamma(x, self.gain().view(shape), self.saturation().view(shape))
