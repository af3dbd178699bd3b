"""A job's start-up with and without ``gc.freeze()`` before the interpreter exits (as ``python -m multiarg`` ends),
side by side: fresh processes of ``bench/startup_probe.py`` alternating between the two endings.

    python bench/job_exit.py                       # paper-scale MNIST MLP, arg2; bench/results/job_exit-<device>.json
    python bench/job_exit.py --rounds 3 --configfile workflow/configs/demo.yaml
"""
from __future__ import annotations

import argparse
import statistics

from common import device, environment, load_config, write
from estimate_cost import startup_seconds

ENDINGS = ("freeze", "collect")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=None)
    p.add_argument("--network", default="mnist/mlp/arg2", help="dataset/arch/activation")
    p.add_argument("--kernel", default="eager")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev, config = device(), load_config(args.configfile)
    key = ("outer", *args.network.split("/"))
    runs = {(kind, end): [] for kind in ("train", "evaluate") for end in ENDINGS}
    for _ in range(args.rounds):
        for kind, end in runs:
            runs[kind, end].append(startup_seconds(config, key, kind, dev, args.kernel, 1, end))
    result = {**environment(dev), "network": args.network, "kernel": args.kernel, "rounds": args.rounds, "kinds": {}}
    for kind in ("train", "evaluate"):
        median = {end: {name: statistics.median(r[name] for r in runs[kind, end]) for name in ("total", "interpreter")}
                  for end in ENDINGS}
        result["kinds"][kind] = {**median, "saved_s": median["collect"]["total"] - median["freeze"]["total"],
                                 "total_freeze_over_collect": median["freeze"]["total"] / median["collect"]["total"]}
        print(f"{kind}: start-up {median['collect']['total']:.2f} s -> {median['freeze']['total']:.2f} s with "
              f"gc.freeze (interpreter start and exit {median['collect']['interpreter']:.2f} -> "
              f"{median['freeze']['interpreter']:.2f} s)")
    print("wrote", write(result, f"job_exit-{dev.type}", args.out))
    return result


if __name__ == "__main__":
    main()
