"""Which way session I's starting functions curve, and what session II does to that.

The curvature tests count learned 2-arg functions against 1/2, as the paper does, which takes session II to start
from functions with no lean either way. It starts from session I's nets, fitted to blurred random maps, and the
sign of those maps' quadratic part depends on the blur's boundary mode, which the paper does not give. Measured
here, without training anything:

  maps: the share of session-I targets whose quadratic fit over the disk |x| <= radius curves negatively (a
        saddle), per boundary mode and blur width, over seeds 0 .. draws-1, and the medians of how close to a
        plane they are (multiarg.pretrain.plane_r2) and of the share of their variance that is interaction rather
        than a sum of one function per argument (interaction_share), both over the whole map;
  runs: in each workflow run folder, every learned 2-arg session-II net beside its own session-I net, both fitted
        over the learned net's input region as the curvature tests fit them (analysis defaults of config.yaml):
        the signs before and after, McNemar's exact test of the changes (the discordant pairs against 1/2), a
        paired t of the normalised curvature (learned minus start) and the line of learned on start normalised
        curvature (multiarg.tables.regression); with --epoch, the session-II net as it was after that epoch (its
        snapshot) in place of the best one, and with --since, the net after that session-II epoch in place of the
        session-I one, to see which epoch made a change. (The workflow's curvature_tests table now tests the best
        epoch's nets against their starts in every run; this reads run folders made before it did, and other
        epochs.)

    python bench/start_curvature.py --runs cifar10-cnn=RUN_DIR mnist-mlp=RUN_DIR ...
    python bench/start_curvature.py --runs cifar10-cnn=RUN_DIR --epoch 2 --since 1   # what the second epoch did
    python bench/start_curvature.py --from RECORD --out FILE   # the tests again from a record's per-seed fits
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from common import environment, write
from torch import device

from multiarg.activations import inner_from_state, load_inner
from multiarg.analysis import fit_quadratic, sign_changes
from multiarg.io import load_torch
from multiarg.nonlinearities import AnalysisConfig, analyse_function
from multiarg.pretrain import MapConfig, grid_axis, interaction_share, plane_r2, random_map
from multiarg.tables import paired_difference, regression
from multiarg.sessions import load_model

BOUNDARIES = ("reflect", "mirror", "nearest", "constant", "wrap")  # scipy.ndimage's modes


def map_statistics(sigmas: list[float], radius: float, draws: int) -> list[dict]:
    """Share of session-I target maps curving negatively over the disk, and their median plane R² and interaction
    share, per boundary mode and blur width."""
    axis = grid_axis(MapConfig())
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    disk = (points**2).sum(-1) <= radius**2
    rows = []
    for boundary in BOUNDARIES:
        for sigma in sigmas:
            cfg = MapConfig(sigma=sigma, boundary=boundary)
            targets = [random_map(2, cfg, seed)[1] for seed in range(draws)]
            signs = [fit_quadratic(points[disk], target[disk])["sign"] for target in targets]
            rows.append({"boundary": boundary, "sigma_cells": sigma, "radius": radius, "draws": draws,
                         "fraction_negative": float(np.mean(np.array(signs) < 0)),
                         "plane_r2_median": float(np.median([plane_r2(t, cfg) for t in targets])),
                         "interaction_share_median": float(np.median([interaction_share(t) for t in targets]))})
    return rows


def session2_inner(run: Path, epoch: int | None):
    """The run's best inner net, or its snapshot after ``epoch``."""
    if epoch is None:
        return load_model(str(run / "model.pt"))[0].inner
    snapshots = load_torch(run / "snapshots.pt")
    return inner_from_state(dict(zip(snapshots["epochs"], snapshots["snapshots"]))[epoch])


def run_changes(label: str, folder: Path, epoch: int | None = None, since: int | None = None) -> dict:
    """Every learned 2-arg session-II net of a run folder against its session-I net (or its snapshot after epoch
    ``since``), over its own input region."""
    cfg, by_seed = AnalysisConfig(), []
    for model_path in sorted(folder.glob("results/runs/*/*/arg2/seed*/session2/model.pt")):
        run = model_path.parent
        hist = load_torch(run / "inputs.pt")
        seed = int(run.parent.name.removeprefix("seed"))
        first = (load_inner(load_torch(folder / f"results/init/arg2/seed{seed}.pt")) if since is None
                 else session2_inner(run, since))
        start = analyse_function(first, hist, cfg)
        learned = analyse_function(session2_inner(run, epoch), hist, cfg)
        by_seed.append({"setting": f"{run.parents[3].name}/{run.parents[2].name}", "seed": seed,
                        "start_sign": start["curvature_sign"], "learned_sign": learned["curvature_sign"],
                        "start_curvature_normalised": round(start["curvature_normalised"], 4),
                        "learned_curvature_normalised": round(learned["curvature_normalised"], 4)})
    if not by_seed:
        raise SystemExit(f"{folder}: no learned 2-arg session-II nets under results/runs")
    return tested({"label": label, "folder": str(folder), "epoch": epoch, "since": since, "by_seed": by_seed})


def tested(run: dict) -> dict:
    """A run's ``by_seed`` fits with their counts, McNemar's test of the sign changes and the paired t of the
    normalised curvature (learned minus start), and the line of learned on start normalised curvature."""
    by_seed = run["by_seed"]
    start, learned = ([r[f"{when}_sign"] for r in by_seed] for when in ("start", "learned"))
    mcnemar = sign_changes(start, learned)
    curvature = {when: [r[f"{when}_curvature_normalised"] for r in by_seed] for when in ("start", "learned")}
    shift = paired_difference(curvature["learned"], curvature["start"])
    # a run from a folder gives None, and a record made before --epoch or --since has no key: the default either way
    return {"label": run["label"], "folder": run["folder"],
            "epoch": "best" if run.get("epoch") is None else run["epoch"],
            "since": "session I" if run.get("since") is None else run["since"], "n": len(by_seed),
            "start_negative": sum(s < 0 for s in start), "learned_negative": sum(s < 0 for s in learned),
            "negative_to_positive": mcnemar["to_positive"], "positive_to_negative": mcnemar["to_negative"],
            "mcnemar_p_two_sided": mcnemar["p_two_sided"], "curvature_change": shift,
            "start_dependence": regression(curvature["start"], curvature["learned"]), "by_seed": by_seed}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="*", default=[], metavar="LABEL=FOLDER", help="workflow run folders")
    p.add_argument("--sigmas", type=float, nargs="+", default=[3.0, 1.0], help="blur widths, in cells")
    p.add_argument("--radius", type=float, default=2.0, help="disk the maps are fitted over")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--epoch", type=int, help="compare each run's session-II snapshot after this epoch (default: best)")
    p.add_argument("--since", type=int, help="against its snapshot after this session-II epoch (default: session I)")
    p.add_argument("--from", dest="record", help="test again the runs of this record, from its per-seed fits (with "
                                                  "--out; reads no run folder, redraws no map)")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if any("=" not in r for r in args.runs):
        p.error("each of --runs is LABEL=FOLDER, e.g. cifar10-cnn=/path/to/run")
    if args.record:
        if not args.out or args.runs:
            p.error("--from takes --out, and the record's own runs")
        record = json.loads(Path(args.record).read_text())
        # the fits and maps are the record's measurement, however often they were tested again since
        result = {**record, "command": " ".join(["python", *sys.argv]),
                  "measured_by": record.get("measured_by", record["command"]),
                  "runs": [tested(run) for run in record["runs"]]}
    else:
        runs = [run_changes(label, Path(folder), args.epoch, args.since)
                for label, folder in (r.split("=", 1) for r in args.runs)]
        maps = map_statistics(args.sigmas, args.radius, args.draws)
        result = {**environment(device("cpu")), "maps": maps, "runs": runs}
    for row in result["maps"]:
        # records made before the medians were measured lack them
        print(f"maps  {row['boundary']:>8} sigma {row['sigma_cells']:g}: {row['fraction_negative']:.3f} negative"
              + (f", plane R² {row['plane_r2_median']:.3f}, interaction share {row['interaction_share_median']:.3g}"
                 if "plane_r2_median" in row else ""))
    for r in result["runs"]:
        shift, line = r["curvature_change"], r["start_dependence"]
        print(f"runs  {r['label']}: start ({r['since']}) {r['start_negative']}/{r['n']} negative, "
              f"learned ({r['epoch']}) {r['learned_negative']}/"
              f"{r['n']}; changes - to + {r['negative_to_positive']}, + to - {r['positive_to_negative']}, "
              f"McNemar p = {r['mcnemar_p_two_sided']:.3g}"
              + (f"; normalised curvature {shift['diff']:+.3f}, paired t p = {shift['p']:.3g}" if shift else "")
              + (f"; learned on start: slope {line['slope']['estimate']:+.2f} (p = {line['slope_p_vs_one']:.3g} "
                 f"against 1), intercept {line['intercept']['estimate']:+.3f}" if line else ""))
    print(f"wrote {write(result, 'start_curvature-cpu', args.out)}")
    return result


if __name__ == "__main__":
    main()
