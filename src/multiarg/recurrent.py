"""Recurrent networks whose units are 2-argument nonlinearities (the paper's suggested next step).

A :class:`RecurrentNet` reads an image as a sequence (rows or pixels) and updates ``hidden`` units per
step. With ``activation="arg2"`` unit c computes ``h_c = f(ff_c, rec_c)``, the shared inner net ``f``
taking the feedforward drive ``ff = W_x x_t + b`` and the recurrent drive ``rec = W_h h_{t-1}`` as its
two arguments (after one LayerNorm over both, as LayerNorm precedes every inner net in the outer nets).
Every other activation (relu, tanh, arg1, gamma) gets the sum of the two drives, the usual RNN unit.
"""
from __future__ import annotations

import torch
from torch import nn

from .activations import ActivationSpec, InnerNet, MultiArgActivation
from .adaptive import AdaptiveActivation
from .models import Standardize
from .params import inner_param_count

SEQUENCES = {"rows": (28, 28), "pixels": (784, 1)}  # (steps, inputs per step) for a 28 x 28 image
ACTIVATIONS = ("arg2", "arg1", "relu", "tanh", "gamma")


class RecurrentNet(nn.Module):
    """Classifier ``(B, 1, 28, 28)`` images in [0, 1] -> logits, reading ``sequence`` steps."""

    def __init__(self, activation: str, hidden: int, n_classes: int = 10, sequence: str = "rows",
                 inner_hidden: int = 64, inner_depth: int = 2, mean=(0.0,), std=(1.0,)):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown recurrent activation {activation!r}")
        self.activation, self.hidden, self.sequence = activation, hidden, sequence
        self.steps, inputs = SEQUENCES[sequence]
        self.standardize = Standardize(mean, std)
        self.feedforward = nn.Linear(inputs, hidden)
        self.recurrent = nn.Linear(hidden, hidden, bias=False)
        two = activation == "arg2"
        self.norm = nn.LayerNorm(2 * hidden if two else hidden)
        if activation.startswith("arg"):
            self.inner = InnerNet(ActivationSpec.parse(activation).n_args, inner_hidden, inner_depth)
            self.act: nn.Module = MultiArgActivation(self.inner, dim=-1)
        else:
            self.inner = None
            self.act = {"relu": nn.ReLU(), "tanh": nn.Tanh()}.get(activation) or AdaptiveActivation(hidden, dim=-1)
        self.head = nn.Linear(hidden, n_classes)

    def drives(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """What the units receive at one step: ``(B, 2H)`` = [ff | rec] for arg2, else ``(B, H)`` = ff + rec."""
        ff, rec = self.feedforward(x_t), self.recurrent(h)
        return self.norm(torch.cat([ff, rec], -1) if self.activation == "arg2" else ff + rec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.standardize(x).reshape(len(x), self.steps, -1)
        h = seq.new_zeros(len(x), self.hidden)
        for t in range(self.steps):
            h = self.act(self.drives(seq[:, t], h))
        return self.head(h)


def recurrent_param_count(activation: str, hidden: int, inputs: int, n_classes: int = 10, inner_hidden: int = 64,
                          inner_depth: int = 2) -> int:
    """Closed-form parameter count of a :class:`RecurrentNet` (tests check it against torch)."""
    norm = 2 * (2 * hidden if activation == "arg2" else hidden)
    act = {"gamma": 2 * hidden}.get(activation, 0)
    if activation.startswith("arg"):
        act = inner_param_count(ActivationSpec.parse(activation).n_args, inner_hidden, inner_depth)
    return inputs * hidden + hidden + hidden * hidden + norm + act + hidden * n_classes + n_classes


def matched_hidden(reference: RecurrentNet, activation: str, inner_hidden: int = 64, inner_depth: int = 2,
                   search: int = 4096) -> int:
    """Hidden size for ``activation``, built with an inner net of ``inner_hidden`` x ``inner_depth`` where it has
    one, whose parameter count is closest to ``reference``'s."""
    target = sum(p.numel() for p in reference.parameters())
    inputs, classes = reference.feedforward.in_features, reference.head.out_features
    return min(range(1, search + 1), key=lambda h: (
        abs(recurrent_param_count(activation, h, inputs, classes, inner_hidden, inner_depth) - target), h))
