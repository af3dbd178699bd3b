"""What a job does before its first batch, for ``bench/estimate_cost.py`` to time as a fresh process:

    python bench/startup_probe.py '{"kind": "train", "kernel": "eager", "device": "cpu", "dataset": "mnist",
                                    "activation": "arg2", "options": {...}}'   # common.outer_options(config, ...)

It imports what a job imports (no more: the estimator's own imports would add most of a second) and builds the
network (parameter matching included). A ``train`` job then builds its optimizer and runs one training step; an
``evaluate`` job takes one gradient to the input, as attacks do. Either loads on the device the libraries and
kernels PyTorch and Triton load lazily.
"""
import json
import sys

import torch
from common import build_outer_net

from multiarg import sessions  # noqa: F401  (a training job's imports, besides these)
from multiarg.activations import set_kernel
from multiarg.data import SHAPES
from multiarg.train import train_step


def probe(spec: dict) -> None:
    set_kernel(spec["kernel"])
    dev = torch.device(spec["device"])
    model = build_outer_net(spec["options"], spec["dataset"], spec["activation"]).to(dev)
    x = torch.rand(2, *SHAPES[spec["dataset"]][0], device=dev)
    labels = torch.zeros(2, dtype=torch.long, device=dev)
    if spec["kind"] == "train":
        # PyTorch's first optimizer imports torch._dynamo (Optimizer.__init__ is wrapped to keep Dynamo out): a second
        train_step(model, torch.optim.Adam(model.parameters()), x, labels)
    else:
        x.requires_grad_()
        torch.autograd.grad(torch.nn.functional.cross_entropy(model.eval()(x), labels), x)
    if dev.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    probe(json.loads(sys.argv[1]))
