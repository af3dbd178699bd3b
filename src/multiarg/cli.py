"""Command line: ``python -m multiarg <step> ...``; one sub-command per pipeline step.

Every hyperparameter arrives as an option (Snakemake passes them from the validated config), so each
step can also be run by hand on a GPU node. The CLI never reads ``config.yaml``.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import torch

from .activations import KERNELS, set_kernel
from .params import WIDENINGS
from .runtime import CPU_ISAS, TF32_OPS, cpu_model, pin_cpu_isa, set_tf32
from .train import COMPILE_MODES, set_compile


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(",") if t != "")


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _tf32(text: str) -> tuple[str, ...]:
    ops = () if text.lower() == "none" else tuple(t for t in text.split(",") if t)
    if set(ops) - set(TF32_OPS):
        raise argparse.ArgumentTypeError(f"expected none or a comma-separated subset of {TF32_OPS}, got {text!r}")
    return ops


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "null", "") else int(text)


def _model_args(p: argparse.ArgumentParser, one_arch: bool = True) -> None:
    """Model options; ``one_arch=False`` takes widths for both architectures instead of one."""
    g = p.add_argument_group("model")
    if one_arch:
        g.add_argument("--arch", required=True, choices=("mlp", "cnn"))
        g.add_argument("--widths", type=_ints, required=True, help="units per hidden layer of the reference model")
    else:
        g.add_argument("--mlp-widths", type=_ints, required=True)
        g.add_argument("--cnn-widths", type=_ints, required=True)
    g.add_argument("--match-to", default=None, help="parameter-match this activation to the given reference")
    g.add_argument("--widening", choices=WIDENINGS, default="offset",
                   help="how a matched model widens the reference's layers: offset (floor(sqrt(n) h) + beta, the "
                        "paper's) or scale (round(s h), keeping their shape)")
    g.add_argument("--dropout", type=float, default=0.5)
    g.add_argument("--layernorm", type=_bool, default=True)
    g.add_argument("--inner-hidden", type=int, default=64)
    g.add_argument("--inner-depth", type=int, default=2)
    g.add_argument("--kernel-size", type=int, default=3)
    g.add_argument("--padding", type=int, default=1)
    g.add_argument("--pool-after", type=_ints, default=(0, 1, 2, 3))


def _training_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--data", required=True, help="prepared dataset (.pt)")
    g.add_argument("--activation", required=True)
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--out-dir", required=True)
    g.add_argument("--max-epochs", type=int, required=True)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--eval-batch-size", type=int, default=1000)
    g.add_argument("--patience", type=int, default=20)
    g.add_argument("--monitor", default="val_error")
    g.add_argument("--restore-best", type=_bool, default=True)
    g.add_argument("--augment", default="none", help="training batches: none, crop, or crop_flip")
    g.add_argument("--crop-pad", type=int, default=4, help="a crop shifts images by up to this many pixels")
    g.add_argument("--val-size", type=int, required=True)
    g.add_argument("--split-seed", type=int, default=0)
    g.add_argument("--train-limit", type=_optional_int, default=None)
    g.add_argument("--test-limit", type=_optional_int, default=None)
    g.add_argument("--device", default="auto")


def _train_config(args):
    from .train import TrainConfig

    return TrainConfig(seed=args.seed, max_epochs=args.max_epochs, lr=args.lr, batch_size=args.batch_size,
                       eval_batch_size=args.eval_batch_size, patience=args.patience, monitor=args.monitor,
                       restore_best=args.restore_best, augment=args.augment, crop_pad=args.crop_pad)


def _split(args) -> dict:
    return dict(val_size=args.val_size, split_seed=args.split_seed, train_limit=args.train_limit,
                test_limit=args.test_limit)


def model_config(args: argparse.Namespace, dataset: str, activation: str):
    """The :class:`ModelConfig` the options describe, with matched widths where asked."""
    from .data import SHAPES
    from .models import ModelConfig
    from .params import matched_widths

    in_shape, n_classes = SHAPES[dataset]
    cfg = ModelConfig(args.arch, args.match_to or activation, in_shape, n_classes, args.widths,
                      dropout=args.dropout, layernorm=args.layernorm, inner_hidden=args.inner_hidden,
                      inner_depth=args.inner_depth, kernel_size=args.kernel_size, padding=args.padding,
                      pool_after=args.pool_after)
    if args.match_to and args.match_to != activation:
        return cfg.replace(activation=activation, widths=matched_widths(cfg, activation, args.widening)[0])
    return cfg.replace(activation=activation)


def _map_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("session I target map")
    g.add_argument("--cells", type=int, default=5)
    g.add_argument("--sigma", type=float, default=3.0)
    g.add_argument("--resolution", type=int, default=16)
    g.add_argument("--boundary", default="wrap")
    g.add_argument("--rescale", type=_bool, default=True)


def cmd_prepare_data(args):
    from .data import prepare, resolve_mirror

    prepare(args.dataset, Path(args.out), resolve_mirror(args.mirror), Path(args.cache_dir))


def cmd_pretrain(args):
    from .activations import ActivationSpec
    from .io import save_torch
    from .pretrain import MapConfig, PretrainConfig, make_initial_inner

    spec = ActivationSpec.parse(args.activation)
    if not spec.learned:
        raise SystemExit(f"{args.activation} has no inner net to pretrain")
    record = make_initial_inner(
        spec.n_args, spec.init, args.seed, args.inner_hidden, args.inner_depth,
        MapConfig(args.cells, args.sigma, args.resolution, args.boundary, args.rescale),
        PretrainConfig(args.steps, args.batch_size, args.lr, args.samples))
    logging.info("session I %s seed %d: mse %.3g, R2 %.4f; the target's best plane has R2 %.3f", args.activation,
                 args.seed, record["mse"], record["r2"], record["target_plane_r2"])
    save_torch(record, args.out)


def cmd_train(args):
    from .sessions import train_session

    cfg = model_config(args, args.dataset, args.activation)
    adversarial = None
    if args.adversarial:
        from .adversarial import defaults

        given = {k: getattr(args, f"adv_{k}") for k in ("eps", "step_size", "steps", "warmup_epochs",
                                                        "clean_fraction", "robust_eval", "robust_test")}
        adversarial = defaults(args.dataset, **{k: v for k, v in given.items() if v is not None})
    train_session(args.session, cfg, _train_config(args), data_path=Path(args.data), out_dir=Path(args.out_dir),
                  data_split=_split(args), init_path=args.init and Path(args.init),
                  source_model=args.source_model and Path(args.source_model), device=args.device,
                  adversarial=adversarial)


def cmd_param_table(args):
    from .tables import parameter_table

    parameter_table(args, Path(args.out))


def cmd_inputs(args):
    from .inputs import collect_inputs

    collect_inputs(Path(args.model), Path(args.data), Path(args.out), bins=args.bins, extent=args.extent,
                   batch_size=args.batch_size, device=args.device, test_limit=args.test_limit,
                   split_seed=args.split_seed)


def cmd_analyze(args):
    from .nonlinearities import AnalysisConfig, analyse_runs, write_outputs

    cfg = AnalysisConfig(mass=args.mass, fit_weighting=args.fit_weighting, flat_tolerance=args.flat_tolerance,
                         ridge_tolerance=args.ridge_tolerance, basis_scale=args.basis_scale,
                         basis_frame=args.basis_frame, spectrum_offset=args.spectrum_offset, l_max=args.l_max,
                         maturity_r2=args.maturity_r2, maturity_epochs=args.maturity_epochs)
    records = analyse_runs(args.models, args.inputs, args.inits, cfg, args.snapshots, args.starts)
    tables = {"fits": args.fits, "curvature": args.curvature, "spectra": args.spectra}
    write_outputs(records, args.out, {**tables, **({"maturation": args.maturation} if args.maturation else {})},
                  args.scale, cfg)


def cmd_cifar10c(args):
    from .cifar10c import prepare

    prepare(Path(args.data), Path(args.out_dir), seed=args.seed, source=args.source, test_limit=args.test_limit,
            split_seed=args.split_seed)


def cmd_eval_corruptions(args):
    from .cifar10c import evaluate_run

    evaluate_run(Path(args.model), Path(args.data), Path(args.cifar10c), Path(args.out), batch_size=args.batch_size,
                 device=args.device, test_limit=args.test_limit, split_seed=args.split_seed)


def cmd_cifar10c_table(args):
    from .cifar10c import write_summary_table

    write_summary_table(args.errors, args.out, args.scale)


def cmd_autoattack(args):
    from .robust_table import run_autoattack

    run_autoattack(Path(args.model), Path(args.data), Path(args.out), eps=args.eps, version=args.version,
                   attacks=args.attacks, test_limit=args.test_limit, split_seed=args.split_seed,
                   batch_size=args.batch_size, device=args.device, seed=args.seed)


def cmd_table1(args):
    from .robust_table import write_table1

    write_table1(args.results, args.out, args.scale)


def cmd_train_rnn(args):
    from .nonlinearities import AnalysisConfig
    from .rnn_study import RNNConfig, train_rnn

    cfg = RNNConfig(args.activation, args.hidden, args.sequence, args.reference, args.inner_hidden, args.inner_depth)
    train_rnn(cfg, _train_config(args), data_path=Path(args.data), out_dir=Path(args.out_dir), data_split=_split(args),
              init_path=args.init and Path(args.init), device=args.device,
              analysis=AnalysisConfig(mass=args.mass, fit_weighting=args.fit_weighting,
                                      flat_tolerance=args.flat_tolerance, ridge_tolerance=args.ridge_tolerance),
              bins=args.bins, extent=args.extent)


def cmd_rnn_table(args):
    from .rnn_study import write_rnn_table

    write_rnn_table(args.summaries, args.out, args.scale, args.mass)


def cmd_summary(args):
    from .comparison import collect, rank_rows, versus_rows, write_summary, write_values, write_versus

    values = collect(args.models, args.metrics, args.param_table, args.cifar10c, args.autoattack, args.rnn,
                     args.early_epochs, args.session2_models)
    write_summary(rank_rows(values), args.out, args.scale)
    write_versus(versus_rows(values), args.versus_relu, args.scale)
    if args.versus_reference:
        write_versus(versus_rows(values, args.reference), args.versus_reference, args.scale, args.reference)
    write_values(values, args.values)


def cmd_claims(args):
    from .claims import write_claims

    write_claims(args.out, args.scale, args.curvature, args.spectra, args.summary_values, args.cifar10c, args.table1,
                 args.maturation, args.session_epochs)


def cmd_figure(args):
    from . import analysis_figures, figures

    from .cifar10c import fig9
    from .comparison_figures import fig_compare, fig_versus
    from .rnn_study import fig_rnn

    {"fig4": figures.fig4, "fig5": figures.fig5, "fig7": analysis_figures.fig7, "fig8": analysis_figures.fig8,
     "fig9": fig9, "rnn": fig_rnn, "compare": fig_compare, "versus": fig_versus}[args.figure](args)


def _add_mass(p, helptext: str = "input mass of the analysed region") -> None:
    """``--mass``, the share of inputs held by the region functions are analysed and drawn over (``analysis.mass``;
    the paper's 99%)."""
    p.add_argument("--mass", type=float, default=0.99, help=helptext)


def _add_maturity(p) -> None:
    """How a run counts as matured (``analysis.maturity_r2``, ``analysis.maturity_epochs``)."""
    p.add_argument("--maturity-r2", type=float, default=0.9,
                   help="share of the final function's variance that marks a snapshot as matured")
    p.add_argument("--maturity-epochs", type=int, default=5, help="the epoch by which most runs should have matured")


def _add_fit(p) -> None:
    """The region and the quadratic fit of Fig. 7 (``analysis.mass``, ``.fit_weighting``, ``.flat_tolerance``,
    ``.ridge_tolerance``)."""
    _add_mass(p)
    p.add_argument("--fit-weighting", choices=("uniform", "density"), default="uniform")
    p.add_argument("--flat-tolerance", type=float, default=1e-5,
                   help="a fit whose quadratic part is at most this share of max |f| is flat (a tie)")
    p.add_argument("--ridge-tolerance", type=float, default=0.0,
                   help="a fit with |det A / tr A^2| under this is a ridge (a tie); 0: none")


def _gather(sub, name: str, helptext: str, inputs: str, func, **defaults) -> argparse.ArgumentParser:
    """A step that reads many files (``--{inputs}``) into one table or figure (``--out``; Markdown, PNG beside it)."""
    p = sub.add_parser(name, help=helptext)
    p.add_argument(f"--{inputs}", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scale", required=True)
    p.set_defaults(func=func, **defaults)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multiarg", description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--inner-kernel", default="eager", choices=KERNELS,
                        help="how inner nets are evaluated: eager PyTorch, or fused Triton kernels on CUDA")
    parser.add_argument("--compile", default="none", choices=COMPILE_MODES,
                        help="train through torch.compile in this mode (reduce-overhead: with CUDA graphs)")
    parser.add_argument("--tf32", type=_tf32, default="conv",
                        help="CUDA float32 operations allowed to round to TF32: conv, matmul, both comma-separated, "
                             "or none (default conv, PyTorch's own)")
    parser.add_argument("--cpu-isa", default="auto", choices=tuple(CPU_ISAS),
                        help="the CPU instruction set PyTorch's kernels may use (auto: the CPU's best); pinned, it "
                             "does not vary with the CPU, and its float sums with it")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare-data", help="obtain a dataset and cache checksummed tensors")
    p.add_argument("--dataset", required=True, choices=("mnist", "cifar10"))
    p.add_argument("--out", required=True)
    p.add_argument("--mirror", default=None, help="local mirror folder (MULTIARG_DATA_MIRROR overrides)")
    p.add_argument("--cache-dir", required=True)
    p.set_defaults(func=cmd_prepare_data)

    p = sub.add_parser("pretrain", help="session I: the initial inner net")
    p.add_argument("--activation", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--inner-hidden", type=int, default=64)
    p.add_argument("--inner-depth", type=int, default=2)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--samples", type=int, default=20000)
    _map_args(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("train", help="session II or III for one network")
    p.add_argument("--session", type=int, required=True, choices=(2, 3))
    p.add_argument("--dataset", required=True, choices=("mnist", "cifar10"))
    p.add_argument("--init", default=None, help="session-I record (session 2, learned activations)")
    p.add_argument("--source-model", default=None, help="session-2 model.pt (session 3)")
    _training_args(p)
    g = p.add_argument_group("adversarial training (PGD, L-inf); unset options take the dataset's defaults")
    g.add_argument("--adversarial", type=_bool, default=False)
    g.add_argument("--adv-eps", type=float, default=None)
    g.add_argument("--adv-step-size", type=float, default=None)
    g.add_argument("--adv-steps", type=int, default=None)
    g.add_argument("--adv-warmup-epochs", type=int, default=None)
    g.add_argument("--adv-clean-fraction", type=float, default=None)
    g.add_argument("--adv-robust-eval", type=_bool, default=None)
    g.add_argument("--adv-robust-test", type=_bool, default=None)
    _model_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("param-table", help="exact and formula parameter counts, matched widths")
    p.add_argument("--out", required=True, help="CSV path; a Markdown copy is written beside it")
    p.add_argument("--datasets", type=lambda s: s.split(","), required=True)
    p.add_argument("--activations", type=lambda s: s.split(","), required=True)
    p.add_argument("--matched", type=lambda s: s.split(","), default=[])
    _model_args(p, one_arch=False)
    p.set_defaults(func=cmd_param_table)

    p = sub.add_parser("inputs", help="histogram of every inner-net input over the test set")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--bins", type=int, default=128)
    p.add_argument("--extent", type=float, default=6.0, help="histogram covers [-extent, extent]^n")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--test-limit", type=_optional_int, default=None)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_inputs)

    for name, helptext in (("fig4", "Fig. 4: inputs, initial and learned nonlinearities, accuracy curves"),
                           ("fig5", "Fig. 5: evolution of the nonlinearity across epochs")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--out", required=True, help="PDF path; a PNG is written beside it")
        p.add_argument("--scale", required=True, help="label stamped on the figure, e.g. 'paper' or 'demo'")
        p.add_argument("--inputs", nargs="*", default=[])
        p.add_argument("--inits", nargs="*", default=[])
        p.add_argument("--models", nargs="*", default=[])
        p.add_argument("--snapshots", nargs="*", default=[])
        p.add_argument("--metrics", nargs="*", default=[])
        p.add_argument("--epochs", type=_ints, default=(0, 1, 2, 3, 5, 10))
        _add_mass(p, "input mass of the region drawn")
        if name == "fig5":
            p.add_argument("--analysis", required=True, help="nonlinearities.pt, for how soon the runs matured")
            _add_maturity(p)
        p.set_defaults(func=cmd_figure, figure=name)

    p = sub.add_parser("analyze", help="quadratic fits, curvature sign tests and spectra of inner nets")
    p.add_argument("--models", nargs="+", required=True, help="session-II model.pt files")
    p.add_argument("--inputs", nargs="+", required=True, help="their inputs.pt histograms")
    p.add_argument("--inits", nargs="*", default=[], help="Xavier session-I records, analysed untrained")
    p.add_argument("--snapshots", nargs="*", default=[], help="the models' snapshots.pt, for how soon they matured")
    p.add_argument("--starts", nargs="*", default=[],
                   help="session-I records of the learned models' seeds, analysed as where they started")
    p.add_argument("--out", required=True, help="records for the figures (.pt)")
    for table in ("fits", "curvature", "spectra"):
        p.add_argument(f"--{table}", required=True, help=f"{table} table (CSV; Markdown beside it)")
    p.add_argument("--maturation", help="maturation table (CSV; Markdown beside it), from --snapshots")
    p.add_argument("--scale", required=True)
    _add_fit(p)
    p.add_argument("--basis-scale", type=float, default=1.0)
    p.add_argument("--basis-frame", choices=("inputs", "origin"), default="inputs")
    p.add_argument("--spectrum-offset", choices=("remove", "keep"), default="remove")
    p.add_argument("--l-max", type=int, default=6)
    _add_maturity(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("cifar10c", help="CIFAR-10-C for the scored test images: published or generated")
    p.add_argument("--data", required=True, help="prepared cifar10.pt")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", choices=("auto", "generate", "download"), default="auto")
    p.add_argument("--test-limit", type=_optional_int, default=None)
    p.add_argument("--split-seed", type=int, default=0)
    p.set_defaults(func=cmd_cifar10c)

    p = sub.add_parser("eval-corruptions", help="clean and CIFAR-10-C errors of one network")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--cifar10c", required=True, help="folder from the cifar10c step")
    p.add_argument("--out", required=True, help="JSON")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--test-limit", type=_optional_int, default=None)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval_corruptions)

    _gather(sub, "cifar10c-table", "CE, relative CE, mCE against ReLU, over seeds", "errors", cmd_cifar10c_table)

    p = sub.add_parser("autoattack", help="AutoAttack (L-inf) on one adversarially trained network")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="JSON (an AutoAttack log is written beside it)")
    p.add_argument("--eps", type=float, required=True)
    p.add_argument("--version", default="standard")
    p.add_argument("--attacks", type=lambda s: [a for a in s.split(",") if a] or None, default=None,
                   help="a subset of the version's attacks (demo); the result is then marked incomplete")
    p.add_argument("--test-limit", type=_optional_int, default=None)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_autoattack)

    _gather(sub, "table1", "Table 1: AutoAttack robust accuracy, 2-arg - ReLU increment (LaTeX too)", "results",
            cmd_table1)
    _gather(sub, "fig9", "Fig. 9: CIFAR-10-C corruption errors", "errors", cmd_figure, figure="fig9")

    p = sub.add_parser("train-rnn", help="one recurrent network on sequential MNIST (the recurrence experiment)")
    _training_args(p)
    p.add_argument("--init", default=None, help="session-I record (learned activations)")
    p.add_argument("--hidden", type=int, default=64, help="units of the reference network")
    p.add_argument("--sequence", choices=("rows", "pixels"), default="rows")
    p.add_argument("--reference", default="arg2", help="every network is parameter-matched to this one")
    p.add_argument("--inner-hidden", type=int, default=64)
    p.add_argument("--inner-depth", type=int, default=2)
    p.add_argument("--bins", type=int, default=128, help="2-arg input histogram cells per axis")
    p.add_argument("--extent", type=float, default=6.0)
    _add_fit(p)
    p.set_defaults(func=cmd_train_rnn)

    p = _gather(sub, "rnn-table", "recurrent networks: accuracy, size, time, 2-arg curvature", "summaries",
                cmd_rnn_table)
    _add_mass(p, "the input share the curvature fits were made over")
    p = _gather(sub, "fig-rnn", "recurrent networks: accuracy curves and learned 2-arg functions (reads the "
                "folders of the summaries)", "summaries", cmd_figure, figure="rnn")
    p.add_argument("--examples", type=int, default=3)

    p = sub.add_parser("summary", help="every activation ranked on accuracy, learning speed, robustness and time")
    p.add_argument("--models", nargs="+", required=True, help="session-III model.pt (metrics.csv beside them)")
    p.add_argument("--metrics", nargs="+", required=True, help="session-II metrics.csv (seconds per epoch)")
    p.add_argument("--session2-models", nargs="*", default=[],
                   help="session-II model.pt of the same runs (metrics.csv beside them), paired with session III")
    p.add_argument("--param-table", required=True)
    p.add_argument("--cifar10c", nargs="*", default=[])
    p.add_argument("--autoattack", nargs="*", default=[])
    p.add_argument("--rnn", nargs="*", default=[], help="summary.json of recurrent runs")
    p.add_argument("--early-epochs", type=int, default=10, help="session-II epochs that early accuracy averages")
    p.add_argument("--out", required=True)
    p.add_argument("--values", required=True, help="JSON of the per-seed values behind the table")
    p.add_argument("--versus-relu", required=True, help="CSV (and a Markdown copy) of every design against ReLU")
    p.add_argument("--versus-reference", help="CSV (and a Markdown copy) of every design against --reference")
    p.add_argument("--reference", default="arg2", help="the model the baselines are matched to")
    p.add_argument("--scale", required=True)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("claims", help="the paper's claims beside this run's measurements, intervals and verdicts")
    for table in ("curvature", "spectra"):
        p.add_argument(f"--{table}", required=True, help=f"{table} table (CSV)")
    p.add_argument("--summary-values", required=True, help="the summary's per-seed values (JSON)")
    p.add_argument("--cifar10c", help="CIFAR-10-C table (CSV), where it was run")
    p.add_argument("--table1", help="Table 1 (CSV), where it was run")
    p.add_argument("--maturation", help="maturation table (CSV), where it was made")
    p.add_argument("--session-epochs", type=int, nargs=2, metavar=("II", "III"),
                   help="the sessions' maximum epochs: session III is set against II only if it may train as long")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", required=True)
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("fig-compare", help="bars of the summary table per setting and activation")
    p.add_argument("--summary", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scale", required=True)
    p.set_defaults(func=cmd_figure, figure="compare")

    p = sub.add_parser("fig-versus", help="forest plot of the versus tables: differences with 95%% intervals")
    p.add_argument("--tables", nargs="+", required=True, help="versus tables (CSV); a repeated reference is skipped")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", required=True)
    p.set_defaults(func=cmd_figure, figure="versus")

    for name, helptext in (("fig7", "Fig. 7: learned nonlinearities, best-fit quadratics, curvature tests"),
                           ("fig8", "Fig. 8: 2- and 3-arg examples and power spectra")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--out", required=True, help="PDF path; a PNG is written beside it")
        p.add_argument("--analysis", required=True, help="nonlinearities.pt from the analyze step")
        p.set_defaults(func=cmd_figure, figure=name)
        if name == "fig7":
            p.add_argument("--examples", type=int, default=4, help="learned examples per setting")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        pin_cpu_isa(args.cpu_isa, sys.argv[1:] if argv is None else None)
    except RuntimeError as err:
        raise SystemExit(f"multiarg: {err}") from None
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # first in the job's log: the step as a command to rerun by hand
    logging.info("command: python -m multiarg %s", shlex.join(sys.argv[1:] if argv is None else argv))
    logging.info("cpu: %s, PyTorch kernels %s", cpu_model(), torch.backends.cpu.get_cpu_capability())
    if args.threads:
        torch.set_num_threads(args.threads)
    set_kernel(args.inner_kernel)
    set_compile(args.compile)
    set_tf32(args.tf32)
    from .config import ConfigError
    from .data import DataError
    from .train import TrainingDiverged

    try:
        args.func(args)
    except (ConfigError, DataError, TrainingDiverged) as err:
        logging.error("%s", err)
        raise SystemExit(f"multiarg {args.command}: {type(err).__name__}: {err}") from None


if __name__ == "__main__":
    main()
