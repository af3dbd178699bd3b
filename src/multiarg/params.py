"""Exact parameter counts, the paper's approximate formula, forward FLOPs, and matched baseline widths."""
from __future__ import annotations

import math

from .activations import ActivationSpec
from .models import ModelConfig


def inner_param_count(n_args: int, hidden: int = 64, depth: int = 2) -> int:
    """Weights and biases of an ``n -> hidden^depth -> 1`` MLP: ``64 n + 4289`` for the paper's."""
    return n_args * hidden + hidden + (depth - 1) * (hidden * hidden + hidden) + hidden + 1


def inner_flops(n_args: int, hidden: int = 64, depth: int = 2) -> int:
    """FLOPs (2 per multiply-add) of one inner-net evaluation."""
    return 2 * (n_args * hidden + (depth - 1) * hidden * hidden + hidden)


def _hidden_layers(cfg: ModelConfig) -> tuple[list[tuple[int, int, int, int]], int]:
    """``(fan_in, pre_activations, units, output_locations)`` of every hidden layer, and the head's fan-in."""
    channels, size, _ = cfg.in_shape
    cnn = cfg.arch == "cnn"
    kernel = cfg.kernel_size**2 if cnn else 1
    fan_in = channels if cnn else channels * size * size
    sides = cfg.cnn_sides() if cnn else []
    layers = []
    for i, units in enumerate(cfg.widths):
        layers.append((fan_in * kernel, cfg.spec.n_args * units, units, sides[i][0] ** 2 if cnn else 1))
        fan_in = units
    out = sides[-1][1] if sides else size
    return layers, fan_in * out * out if cnn else fan_in


def exact_param_count(cfg: ModelConfig) -> int:
    """Closed-form count of :class:`~multiarg.models.OuterNet` parameters (tests check it against torch)."""
    layers, flat = _hidden_layers(cfg)
    per_weight = 2 if cfg.spec.design == "dac" else 1  # DAC: a dendrite bias per connection
    per_unit = 1 + (2 if cfg.layernorm else 0) + (2 if cfg.spec.design == "gamma" else 0)  # bias, LayerNorm, n and s
    total = sum(fan_in * pre * per_weight + pre * per_unit for fan_in, pre, _, _ in layers)
    total += flat * cfg.n_classes + cfg.n_classes
    if cfg.spec.learned:
        total += inner_param_count(cfg.spec.n_args, cfg.inner_hidden, cfg.inner_depth)
    return total


def forward_flops(cfg: ModelConfig) -> int:
    """FLOPs of one image's forward pass, 2 per multiply-add: the layers' and the head's weighted sums, DAC's add
    and relu on every connection (2 more), and the inner net at every unit and location. Elementwise work
    (LayerNorm, ReLU, gamma, pooling, biases) is left out, as in ``torch.utils.flop_counter``."""
    layers, flat = _hidden_layers(cfg)
    per_connection = 4 if cfg.spec.design == "dac" else 2
    total = sum(per_connection * fan_in * pre * locations for fan_in, pre, _, locations in layers)
    total += 2 * flat * cfg.n_classes
    if cfg.spec.learned:
        evaluations = sum(units * locations for _, _, units, locations in layers)
        total += evaluations * inner_flops(cfg.spec.n_args, cfg.inner_hidden, cfg.inner_depth)
    return total


def paper_mlp_param_count(x: int, widths: tuple[int, ...], y: int, n: int, inner: bool = True) -> int:
    """The paper's Sec. 4.2 formula ``x(n h1 + 1) + sum n h_l h_{l+1} + h_L y + (65 n + 4288)``; a fixed
    activation (``inner=False``, n = 1) has no inner-net term.

    It leaves out most biases and the LayerNorm gains, and its inner-net term differs from the exact
    ``64 n + 4289``; we report it beside the exact count, never use it for matching.
    """
    hidden = sum(n * a * b for a, b in zip(widths, widths[1:]))
    return x * (n * widths[0] + 1) + hidden + widths[-1] * y + (65 * n + 4288 if inner else 0)


WIDENINGS = ("offset", "scale")


def matched_widths(reference: ModelConfig, activation: str, widening: str = "offset") -> tuple[tuple[int, ...], float]:
    """Widths for ``activation`` whose exact parameter count (for a ``-flops`` name: :func:`forward_flops`) is
    closest to ``reference``'s, widened from the reference's widths ``h_l`` by ``widening`` (a ``-width`` name keeps
    those widths, unmatched, and is refused here):

    - ``offset`` (the paper's rule): ``floor(sqrt(n) h_l) + beta``, ``n`` the reference's argument count, one integer
      ``beta`` shared by all layers, the smallest ``|beta|`` winning ties. An offset shifts narrow layers most: a
      design that spends more per connection (DAC) gets a first layer narrower in proportion than the rest.
    - ``scale``: ``round(s h_l)``, one real ``s`` for all layers, which keeps the reference's shape.

    Every width stays at least 1. Returns ``(widths, beta)``, or ``(widths, s)`` with s the widths' sum over the
    reference's, to 4 decimals (the s found is one of an interval that rounds to the same widths).
    """
    if widening not in WIDENINGS:
        raise ValueError(f"widening must be one of {WIDENINGS}, got {widening!r}")
    budget = ActivationSpec.parse(activation).budget
    if budget == "width":
        raise ValueError(f"{activation!r} keeps the reference's widths; it is not matched")
    measure = forward_flops if budget == "flops" else exact_param_count
    target = measure(reference)

    def count(widths: tuple[int, ...]) -> int:
        return measure(reference.replace(activation=activation, widths=widths))

    if widening == "scale":
        return _matched_scale(reference.widths, count, target)
    base = [math.floor(math.sqrt(reference.spec.n_args) * h) for h in reference.widths]

    def offset(beta: int) -> tuple[int, ...]:
        return tuple(b + beta for b in base)

    # Both measures rise with beta, so bisect for the first beta reaching the target: no range to outgrow (DAC
    # needs beta near -0.4 h, past any fixed bound once layers are wide).
    lo, hi = 1 - min(base), 1
    while count(offset(hi)) < target:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if count(offset(mid)) >= target else (mid + 1, hi)
    beta = min((b for b in (lo - 1, lo) if b >= 1 - min(base)),
               key=lambda b: (abs(count(offset(b)) - target), abs(b)))
    return offset(beta), beta


def _matched_scale(widths: tuple[int, ...], count, target: int) -> tuple[tuple[int, ...], float]:
    """The widths ``round(s h)`` (at least 1) whose ``count`` is closest to ``target``, by bisection on s: the count
    rises with s in steps, so the answer is one of the two width vectors on either side of the step that reaches
    the target (the narrower on a tie)."""
    def scaled(s: float) -> tuple[int, ...]:
        return tuple(max(1, round(s * h)) for h in widths)

    lo, hi = 0.0, 1.0
    while count(scaled(hi)) < target:
        lo, hi = hi, 2 * hi
    for _ in range(60):  # to well below any step of round(s h)
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count(scaled(mid)) >= target else (mid, hi)
    matched = scaled(min((lo, hi), key=lambda v: (abs(count(scaled(v)) - target), v)))
    return matched, round(sum(matched) / sum(widths), 4)
