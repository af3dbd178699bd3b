"""The ``results/`` path scheme, shared by the Snakefile and the figure code.

results/
  data/{dataset}.pt (+ .manifest.json)              prepared, checksummed tensors
  init/{activation}/seed{seed}.pt                    session I: initial inner nets
  runs/{dataset}/{arch}/{activation}/seed{seed}/session{session}/
      model.pt  metrics.csv  snapshots.pt (session 2)  inputs.pt (learned activations)
  runs/{dataset}/{arch}/{activation}/seed{seed}/adversarial/   adversarial training, AutoAttack
  rnn/{sequence}/{activation}/seed{seed}/           recurrent networks on sequential MNIST
  tables/  figures/                                  final artefacts
"""
from __future__ import annotations

import re
from pathlib import Path

DATA = "results/data/{dataset}.pt"
INIT = "results/init/{activation}/seed{seed}.pt"
RUN = "results/runs/{dataset}/{arch}/{activation}/seed{seed}/session{session}"
RNN_RUN = "results/rnn/{sequence}/{activation}/seed{seed}"
TABLES = "results/tables"
FIGURES = "results/figures"

_RUN_RE = re.compile(
    r"runs/(?P<dataset>[^/]+)/(?P<arch>[^/]+)/(?P<activation>[^/]+)/seed(?P<seed>\d+)/session(?P<session>\d)/")


def parse_run(path: str | Path) -> dict:
    """``{dataset, arch, activation, seed, session}`` of a file inside a run folder."""
    m = _RUN_RE.search(Path(path).as_posix())
    if not m:
        raise ValueError(f"{path} is not inside a run folder ({RUN})")
    info = m.groupdict()
    info["seed"], info["session"] = int(info["seed"]), int(info["session"])
    return info
