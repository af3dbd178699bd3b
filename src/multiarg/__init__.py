"""Learned multi-argument activation functions (Yoon, Orhan, Kim & Pitkow) and their reproduction.

The activation modules are usable on their own::

    from multiarg import InnerNet, MultiArgActivation
    act = MultiArgActivation(InnerNet(n_args=2))      # (B, 2C, ...) -> (B, C, ...)
    set_kernel("chunked")                             # any device: chunks of points, hidden activations recomputed
    set_kernel("fused-bf16")                          # fused Triton kernels for every inner net (CUDA)
"""
import importlib

# Names load on first use (PEP 562), so `python -m multiarg` can hand a job to the job server without importing
# PyTorch first (multiarg.jobserver).
_HOMES = {"ActivationSpec": "activations", "InnerNet": "activations", "MultiArgActivation": "activations",
          "set_kernel": "activations", "ModelConfig": "models", "OuterNet": "models", "count_parameters": "models",
          "exact_param_count": "params", "inner_param_count": "params", "matched_widths": "params",
          "paper_mlp_param_count": "params"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'multiarg' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
