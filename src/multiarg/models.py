"""Outer networks (MLP and CNN) whose every activation is one shared inner net, or ReLU.

A layer of ``C`` units feeding an ``n``-argument activation produces ``n * C`` pre-activations.
Each hidden block is ``linear/conv -> LayerNorm -> activation [-> max-pool] -> dropout``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .activations import ActivationSpec, InnerNet, MultiArgActivation
from .adaptive import AdaptiveActivation
from .dendritic import DACConv2d, DACLinear

ARCHS = ("mlp", "cnn")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network; stored in every checkpoint."""

    arch: str
    activation: str
    in_shape: tuple[int, int, int]
    n_classes: int
    widths: tuple[int, ...]  # units (activations) per hidden layer
    dropout: float = 0.5
    layernorm: bool = True
    inner_hidden: int = 64
    inner_depth: int = 2
    kernel_size: int = 3
    padding: int = 1
    pool_after: tuple[int, ...] = field(default=(0, 1, 2, 3))  # CNN layers followed by 2x2 max-pool

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {ARCHS}")
        ActivationSpec.parse(self.activation)
        for name in ("in_shape", "widths", "pool_after"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def spec(self) -> ActivationSpec:
        return ActivationSpec.parse(self.activation)

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "ModelConfig":
        return ModelConfig(**{**self.to_dict(), **changes})

    def cnn_sides(self) -> list[tuple[int, int]]:
        """:func:`cnn_sides` of this CNN's layers on its input."""
        return cnn_sides(self.in_shape[1], len(self.widths), self.kernel_size, self.padding, self.pool_after)


def cnn_sides(side: int, layers: int, kernel_size: int, padding: int, pool_after) -> list[tuple[int, int]]:
    """``(conv, out)`` per conv layer (stride 1) on a ``side``-wide input: the side of its output map, and of the map
    it passes on (after its 2x2 pool, if ``pool_after`` lists it). A side below 1 is a layer that could not run."""
    sides = []
    for i in range(layers):
        conv = side + 2 * padding - kernel_size + 1
        side = conv // 2 if i in pool_after else conv
        sides.append((conv, side))
    return sides


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels at each location of an ``(B, C, H, W)`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class Standardize(nn.Module):
    """Per-channel ``(x - mean) / std`` inside the model, so attacks and corruptions see [0, 1] images."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _activation(spec, inner: InnerNet | None, units: int) -> nn.Module:
    if spec.learned:
        return MultiArgActivation(inner, dim=1)
    if spec.design == "gamma":
        return AdaptiveActivation(units, dim=1)
    # DAC's nonlinearity sits in its connections; the unit's own output activation is left out
    return nn.Identity() if spec.design == "dac" else nn.ReLU()


class OuterNet(nn.Module):
    """An MLP or CNN classifier; ``self.inner`` is its one shared inner net (None for ReLU)."""

    def __init__(self, cfg: ModelConfig, mean=None, std=None, inner: InnerNet | None = None):
        super().__init__()
        self.cfg = cfg
        spec = cfg.spec
        channels = cfg.in_shape[0]
        self.standardize = Standardize(
            mean if mean is not None else [0.0] * channels, std if std is not None else [1.0] * channels
        )
        if spec.learned:
            self.inner = inner if inner is not None else InnerNet(spec.n_args, cfg.inner_hidden, cfg.inner_depth)
            given, wanted = (self.inner.n_args, self.inner.hidden, self.inner.depth), (spec.n_args, cfg.inner_hidden,
                                                                                     cfg.inner_depth)
            if given != wanted:  # the saved model records cfg's shape, so it could not be loaded again
                raise ValueError(f"the inner net's (arguments, hidden, depth) are {given}; {cfg.activation} with "
                                 f"inner_hidden {cfg.inner_hidden} and inner_depth {cfg.inner_depth} needs {wanted}")
        else:
            self.inner = None
        self.activations: list[nn.Module] = []
        blocks: list[nn.Module] = [] if cfg.arch == "cnn" else [nn.Flatten()]
        size = cfg.in_shape[1]
        fan_in = channels if cfg.arch == "cnn" else channels * size * size
        for i, units in enumerate(cfg.widths):
            pre = spec.n_args * units
            dac = spec.design == "dac"
            # a DAC layer drops its own inputs (the previous block's dropout), see dendritic.DACLinear
            dropped = {"dropout": cfg.dropout if i else 0.0} if dac else {}
            if cfg.arch == "mlp":
                blocks.append(DACLinear(fan_in, pre, **dropped) if dac else nn.Linear(fan_in, pre))
                norm: nn.Module = nn.LayerNorm(pre)
            else:
                conv = DACConv2d if dac else nn.Conv2d
                blocks.append(conv(fan_in, pre, cfg.kernel_size, padding=cfg.padding, **dropped))
                norm = ChannelLayerNorm(pre)
            if cfg.layernorm:
                blocks.append(norm)
            act = _activation(spec, self.inner, pre)
            self.activations.append(act)
            blocks.append(act)
            if cfg.arch == "cnn" and i in cfg.pool_after:
                blocks.append(nn.MaxPool2d(2, 2))
            # before a DAC layer the dropout is that layer's; Identity keeps the layer indices every net shares
            blocks.append(nn.Identity() if dac and i < len(cfg.widths) - 1 else nn.Dropout(cfg.dropout))
            fan_in = units
        if cfg.arch == "cnn":
            blocks.append(nn.Flatten())
            size = cfg.cnn_sides()[-1][1] if cfg.widths else size
            fan_in = fan_in * size * size
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(fan_in, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.standardize(x)))


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a shared inner net counts once)."""
    return sum(p.numel() for p in model.parameters())
