"""Learned multi-argument activation functions (Yoon, Orhan, Kim & Pitkow) and their reproduction.

The activation modules are usable on their own::

    from multiarg import InnerNet, MultiArgActivation
    act = MultiArgActivation(InnerNet(n_args=2))      # (B, 2C, ...) -> (B, C, ...)
    set_kernel("fused-bf16")                          # fused Triton kernels for every inner net (CUDA)
"""
from .activations import ActivationSpec, InnerNet, MultiArgActivation, set_kernel
from .models import ModelConfig, OuterNet, count_parameters
from .params import exact_param_count, inner_param_count, matched_widths, paper_mlp_param_count

__all__ = ["ActivationSpec", "InnerNet", "MultiArgActivation", "ModelConfig", "OuterNet", "count_parameters",
           "exact_param_count", "inner_param_count", "matched_widths", "paper_mlp_param_count", "set_kernel"]
