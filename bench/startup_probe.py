"""What a job does before its first batch, for ``bench/estimate_cost.py`` to time as a fresh process:

    python bench/startup_probe.py '{"kind": "train", "kernel": "eager", "device": "cpu", "dataset": "mnist",
                                    "activation": "arg2", "options": {...}, "exit": "freeze"}'
    # options: common.outer_options(config, arch, activation)

It imports what a job imports (no more: the estimator's own imports would add most of a second) and builds the
network (parameter matching included). A ``train`` job then builds its optimizer and runs one training step; an
``evaluate`` job takes one gradient to the input, as attacks do. Either loads on the device the libraries and
kernels PyTorch and Triton load lazily. Prints the seconds of each phase as JSON; the interpreter's own start and
exit are the rest of the process's wall time. ``exit`` "freeze" ends as ``python -m multiarg`` does (``gc.freeze``),
"collect" as a plain script. With ``"forked": true`` it first imports what the workflow's job server imports and
times the phases in a forked child, as that server starts a job (the hand-over is timed apart).
"""
import gc
import json
import sys
import time


def probe(spec: dict) -> dict[str, float]:
    seconds, start = {}, time.perf_counter()

    def phase(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        seconds[name], start = now - start, now

    # imported here to be timed
    import torch
    from common import build_outer_net

    from multiarg import sessions  # noqa: F401  (a training job's imports, besides these)
    from multiarg.activations import set_kernel
    from multiarg.data import SHAPES
    from multiarg.train import train_step
    phase("import")
    set_kernel(spec["kernel"])
    dev = torch.device(spec["device"])
    model = build_outer_net(spec["options"], spec["dataset"], spec["activation"]).to(dev)
    x = torch.rand(2, *SHAPES[spec["dataset"]][0], device=dev)
    labels = torch.zeros(2, dtype=torch.long, device=dev)
    phase("network")
    if spec["kind"] == "train":
        # PyTorch's first optimizer imports torch._dynamo: Optimizer.__init__ is wrapped to keep Dynamo out
        optimizer = torch.optim.Adam(model.parameters())
        phase("optimizer")
        train_step(model, optimizer, x, labels)
    else:
        x.requires_grad_()
        torch.autograd.grad(torch.nn.functional.cross_entropy(model.eval()(x), labels), x)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    phase("first_step")
    return seconds


def forked(spec: dict) -> dict[str, float]:
    """:func:`probe` in a child forked from this process once it has imported what the job server imports
    (``multiarg.jobserver.preload``), as that server runs a job; the child's phases."""
    import os

    import common  # noqa: F401  (the probe's network builder: a job's own is preloaded as well)

    from multiarg import jobserver

    jobserver.preload()
    gc.freeze()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            os.write(write, json.dumps(probe(spec)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        phases = fh.read()
    if os.waitpid(pid, 0)[1]:
        raise SystemExit("the forked probe failed")
    return json.loads(phases)


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(forked(spec) if spec.get("forked") else probe(spec)))
    if spec["exit"] == "freeze":
        gc.freeze()
