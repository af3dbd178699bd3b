"""How the paper's dropout (0.5 after every conv block) slows the first epochs of a narrow CNN: the ReLU CNN trained
as ``--configfile`` (default: the narrow CIFAR-10 CNN study, whose MNIST twin trains alike) splits the data, builds
the CNN and trains it (Adam 1e-3, batch 32, 10 000 training images), at several widths and dropout rates side by
side, its test accuracy after each of the first epochs. The studies' 2-arg CNN has 8/16/16/16 maps and their
parameter-matched ReLU 15/26/26/26; the paper's widths are 60/120/120/120 (ReLU 85/170/...).

    OMP_NUM_THREADS=1 python bench/dropout_width.py   # bench/results/dropout_width-<device>.json (about 5 minutes)

The committed records ran on one thread; more threads sum in another order, which moves accuracies by up to a point
or so (MNIST, 8/16/16/16, seed 0, dropout 0.5: 26.6% after the second epoch on one thread, 25.3% on two).

Data: ``--data DIR`` holding a run's prepared ``<dataset>.pt`` (``results/data``), else prepared there from the mirror
(``MULTIARG_DATA_MIRROR``) or a download.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import ROOT, build_outer_net, device, environment, load_config, outer_options, write

from multiarg.data import load_prepared, prepare, resolve_mirror, split
from multiarg.train import run_epoch

STUDY = "workflow/configs/cifar10-cnn-study-wrap.yaml"


def _widths(text: str) -> list[tuple[int, ...]]:
    return [tuple(int(w) for w in group.split("/")) for group in text.split(",")]


def dataset(name: str, folder: Path) -> dict:
    """The prepared dataset, prepared into ``folder`` first where it is not there yet."""
    path = folder / f"{name}.pt"
    if not path.exists():
        prepare(name, path, resolve_mirror(None), folder / "cache")
    return load_prepared(path)


def curve(config: dict, prepared: dict, data: dict, widths: tuple[int, ...], dropout: float, seed: int, epochs: int,
          dev: torch.device) -> dict:
    """Test accuracy after each epoch, and the seconds the epochs took."""
    torch.manual_seed(seed)
    options = {**outer_options(config, "cnn", "relu"), "widths": widths, "dropout": dropout, "match_to": None}
    model = build_outer_net(options, prepared["name"], "relu", prepared["mean"], prepared["std"]).to(dev)
    train = config["train"]
    optimizer = torch.optim.Adam(model.parameters(), train["lr"])
    generator = torch.Generator().manual_seed(seed)
    (x, y), (tx, ty) = data["train"], data["test"]
    accuracy, start = [], time.perf_counter()
    for _ in range(epochs):
        run_epoch(model, x, y, train["batch_size"], optimizer, generator)
        accuracy.append(round(100 * run_epoch(model, tx, ty, train["eval_batch_size"])[1], 2))
    return {"test_acc": accuracy, "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist,cifar10")
    p.add_argument("--widths", default="8/16/16/16,15/26/26/26,30/52/52/52", type=_widths)
    p.add_argument("--dropouts", default="0.5,0", type=lambda s: [float(d) for d in s.split(",")])
    p.add_argument("--seeds", default="0,1", type=lambda s: [int(v) for v in s.split(",")])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--configfile", default=STUDY, help="merged over config.yaml: the split, the CNN and its training")
    p.add_argument("--data", default="results/data", type=Path)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev, config = device(), load_config(str(ROOT / args.configfile))  # a relative path is the repository's
    split_keys = {k: config["data"][k] for k in ("val_size", "split_seed", "train_limit", "test_limit")}
    result = {**environment(dev), "configfile": args.configfile, "split": split_keys,
              "optimizer": f"Adam lr {config['train']['lr']}, batch {config['train']['batch_size']}",
              "epochs": args.epochs, "runs": []}
    for name in args.datasets.split(","):
        prepared = dataset(name, args.data)
        data = {part: tuple(t.to(dev) for t in tensors) for part, tensors in split(prepared, **split_keys).items()}
        for widths in args.widths:
            for dropout in args.dropouts:
                for seed in args.seeds:
                    run = {"dataset": name, "widths": "/".join(map(str, widths)), "dropout": dropout, "seed": seed,
                           **curve(config, prepared, data, widths, dropout, seed, args.epochs, dev)}
                    result["runs"].append(run)
                    print(run, flush=True)
                    path = write(result, f"dropout_width-{dev.type}", args.out)
    print("wrote", path)
    return result


if __name__ == "__main__":
    main()
