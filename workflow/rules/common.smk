import copy
import os
import re
import shlex

from multiarg import jobserver, paths
from multiarg.activations import ActivationSpec
from multiarg.config import (EXTENDS, load_config, merge_config, pretrain_options, read_config_file, shell_options,
                             validate_config)
from multiarg.runtime import CPU_ISAS

for _file in workflow.configfiles:  # Snakemake's own reading keeps the last of a repeated key without a word
    read_config_file(_file)
# Snakemake knows nothing of `extends`, and keeps the key where a config file names one: the configuration is then
# read again, the way Snakemake builds it: what the command line gives (the --configfiles with what they extend, then
# --config), config.yaml (the `configfile:` directive) over that, and what the command line gives over both. The order
# matters beyond the values: a mapping's key order reaches the commands that render one whole (session I's options),
# and with them the params Snakemake compares to decide what to rerun.
if EXTENDS in config:
    _given = merge_config(load_config(*workflow.overwrite_configfiles), dict(workflow.config_settings.config))
    _directive = load_config(*workflow.configfiles[len(workflow.overwrite_configfiles):])
    config.clear()
    config.update(merge_config(merge_config(copy.deepcopy(_given), _directive), _given))
validate_config(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))
# The data mirror reaches prepare_data through the environment (MULTIARG_DATA_MIRROR, which wins over data.mirror),
# not as a parameter, since where the same data is read from must not make Snakemake rerun the whole DAG (the
# prepared files' checksums say what the data is).
if config["data"]["mirror"]:
    os.environ.setdefault("MULTIARG_DATA_MIRROR", str(config["data"]["mirror"]))
# Every step, and the job server its local jobs fork from, starts with the instruction set pinned (`cpu_isa`); the
# steps that compute numbers take it as an option too, so that changing it reruns them.
os.environ.update(CPU_ISAS[config["cpu_isa"]])
CPU_ISA = f"--cpu-isa {config['cpu_isa']}"

SCALE = shlex.quote(config["scale"])  # the label every table and figure is stamped with, quoted for the shell
DATASETS = config["data"]["datasets"]
ARCHS = config["archs"]
SEEDS = config["seeds"]
ACTIVATIONS = config["activations"]
TRIALS = config["analysis"]["trials"]
# The analyses add session-II runs (more seeds, 3-arg nets) and untrained Xavier inits beyond ACTIVATIONS.
ANALYSED = [a for a in ("arg2", "arg2-xavier", "arg3") if TRIALS[a]]
# Untrained Xavier inits: N per dataset x arch, each analysed in one setting (nonlinearities.xavier_assignment),
# so the pooled groups hold distinct networks; session II of arg2-xavier seed s starts from init s in every setting.
XAVIER_INITS = {a: n * len(DATASETS) * len(ARCHS) for a, n in (("arg2-xavier", TRIALS["arg2-xavier"]),
                                                               ("arg3-xavier", TRIALS["arg3"]))}
RNN = config["rnn"]
RNN_LEARNED = [a for a in RNN["activations"] if a.startswith("arg")]  # need a session-I inner net
_NAMED = list(dict.fromkeys(ACTIVATIONS + ANALYSED + [a for a, n in XAVIER_INITS.items() if n] + RNN_LEARNED))
LEARNED = [a for a in _NAMED if ActivationSpec.parse(a).learned]
# A FLOP-matched argN (argN-flops) starts from argN's session-I net: the inner net is the same, only the widths differ.
PRETRAINED = list(dict.fromkeys(ActivationSpec.parse(a).design for a in LEARNED))
ALL_ACTIVATIONS = list(dict.fromkeys(_NAMED + PRETRAINED))
# Session III retrains on a learned nonlinearity; the Xavier controls stop after session II.
SESSION3 = [a for a in ACTIVATIONS if not a.endswith("-xavier")]
COMPARED = ("arg2", "arg1", "relu", "gamma", "dac")  # the paper's models and the related designs
# Fig. 4d and the summary: each compared design, followed by its FLOP-matched variant where one is trained
CURVES = [a for design in COMPARED for a in ACTIVATIONS if ActivationSpec.parse(a).design == design]
ENV = "../../envs/multiarg.yaml"
# Steps that run networks take the inner-net kernel, the compile mode, the TF32 setting and the CPU instruction set
# (as `params.step`); changing one reruns only those.
MODEL_STEP = (f"python -m multiarg --inner-kernel {config['inner_kernel']} --compile {config['compile']}"
              f" --tf32 {','.join(config['tf32']) or 'none'} {CPU_ISA}")
S2 = paths.RUN.replace("{session}", "2")
S3 = paths.RUN.replace("{session}", "3")


def per_attempt(amount):
    """A resource that doubles on a job's retry (``retries`` in the profiles): a job that ran out of memory or
    time is resubmitted with twice as much, a killed training resuming from its checkpoint."""
    return lambda wildcards, attempt: amount * attempt


def run_file(session, name):
    """Wildcard path of ``name`` in the run folder of ``session``."""
    return "/".join((S2 if session == 2 else S3, name))


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in values) or "(?!)"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    arch=_alternatives(ARCHS),
    activation=_alternatives(ALL_ACTIVATIONS),
    seed=r"\d+",
    sequence="rows|pixels",


cli_args = shell_options  # the rules' name: a mapping as ``python -m multiarg`` options, shell text


def name_unless_default(options, key, value, default):
    """Add ``key``'s ``value`` to ``options`` unless it is the command's ``default``: an option added after runs were
    made, left unnamed at its default, leaves those runs' parameters as they were, so Snakemake does not run them
    again."""
    if value != default:
        options[key] = value


def model_options(arch):
    m = config["model"]
    return {"arch": arch, "widths": m[f"{arch}_widths"], "kernel_size": m["kernel_size"], "padding": m["padding"],
            "pool_after": m["pool_after"], "dropout": m["dropout"], "layernorm": m["layernorm"],
            "inner_hidden": m["inner_hidden"], "inner_depth": m["inner_depth"]}


def get_pretrain_args(wildcards):
    """Session I's settings; an Xavier init takes only the inner net's size and the map's extent (the record's
    half_width), so tuning the regression does not rerun it and every Xavier control trained from it."""
    options = pretrain_options(config)
    if ActivationSpec.parse(wildcards.activation).init == "xavier":
        options = {k: options[k] for k in ("inner_hidden", "inner_depth", "cells")}
    return cli_args(options)


def training_options(dataset, patience=None, train_limit=None):
    """The `train` and `data` settings every training step takes (`python -m multiarg train` and `train-rnn`)."""
    t, d = config["train"], config["data"]
    return {"lr": t["lr"], "batch_size": t["batch_size"], "eval_batch_size": t["eval_batch_size"],
            "patience": patience or t["patience"], "monitor": t["monitor"], "restore_best": t["restore_best"],
            "augment": t["augment"][dataset], "crop_pad": t["crop_pad"], "val_size": d["val_size"],
            "split_seed": d["split_seed"], "train_limit": train_limit or d["train_limit"],
            "test_limit": d["test_limit"], "device": config["device"]}


def get_train_args(wildcards, patience=None, train_limit=None):
    options = {**model_options(wildcards.arch), **training_options(wildcards.dataset, patience, train_limit)}
    if wildcards.activation in config["matching"]["matched"]:
        options["match_to"] = config["matching"]["reference"]
        name_unless_default(options, "widening", config["matching"]["widening"], "offset")
    return cli_args(options)


def get_init(wildcards):
    """Session II of a learned activation starts from its session-I inner net."""
    if wildcards.activation in LEARNED:
        return paths.INIT.format(activation=ActivationSpec.parse(wildcards.activation).design, seed=wildcards.seed)
    return []


def get_init_arg(wildcards, input):
    return f"--init {input.init}" if input.get("init") else ""


def get_inputs_args(wildcards):
    a, d = config["analysis"], config["data"]
    bins = a["input_bins_3arg"] if ActivationSpec.parse(wildcards.activation).n_args == 3 else a["input_bins"]
    return cli_args({"bins": bins, "extent": a["input_extent"], "split_seed": d["split_seed"],
                     "test_limit": d["test_limit"], "device": config["device"]})


def get_analyze_args(wildcards):
    a = config["analysis"]
    return cli_args({"scale": SCALE, "mass": a["mass"], "fit_weighting": a["fit_weighting"],
                     "flat_tolerance": a["flat_tolerance"], "ridge_tolerance": a["ridge_tolerance"],
                     "basis_scale": a["basis_scale"], "basis_frame": a["basis_frame"],
                     "spectrum_offset": a["spectrum_offset"], "l_max": a["l_max"],
                     "maturity_r2": a["maturity_r2"], "maturity_epochs": a["maturity_epochs"]})


def get_param_table_args(wildcards):
    m, options = config["model"], model_options("mlp")
    options.pop("arch"), options.pop("widths")
    return cli_args({**options, "datasets": DATASETS, "activations": list(dict.fromkeys(ACTIVATIONS + ANALYSED)),
                     "mlp_widths": m["mlp_widths"], "cnn_widths": m["cnn_widths"],
                     "match_to": config["matching"]["reference"], "matched": config["matching"]["matched"] or "''",
                     "widening": config["matching"]["widening"]})


def runs(template, filename, activations, sessions=(2,), seeds=None):
    """Files of every dataset x arch x activation x seed (``seeds``: a list, or a function of the activation)."""
    seeds_of = seeds if callable(seeds) else (lambda act: seeds or SEEDS)
    return [f"{template}/{filename}".format(dataset=d, arch=a, activation=act, seed=s, session=session)
            for d in DATASETS for a in ARCHS for act in activations for s in seeds_of(act) for session in sessions]


def analysis_inputs():
    """Session-II models, input histograms and snapshots of every analysed run, the untrained Xavier inits, and
    the session-I nets the learned runs started from."""
    seeds = lambda act: range(TRIALS[act])
    return {"models": runs(S2, "model.pt", ANALYSED, seeds=seeds),
            "inputs": runs(S2, "inputs.pt", ANALYSED, seeds=seeds),
            "snapshots": runs(S2, "snapshots.pt", ANALYSED, seeds=seeds),
            "inits": [paths.INIT.format(activation=a, seed=s) for a, n in XAVIER_INITS.items() for s in range(n)],
            "starts": [paths.INIT.format(activation=a, seed=s) for a in ("arg2", "arg3") if a in ANALYSED
                       for s in range(TRIALS[a])]}


C10C = config["robustness"]["cifar10c"]
C10C_DIR = "results/data/cifar10c"


def c10c_test_limit():
    return C10C["test_limit"] if C10C["test_limit"] is not None else config["data"]["test_limit"]


def c10c_errors():
    """Corruption errors of every evaluated session-III network (empty without CIFAR-10 or archs)."""
    if "cifar10" not in DATASETS:
        return []
    return [f"{S3}/cifar10c_errors.json".format(dataset="cifar10", arch=a, activation=act, seed=s)
            for a in C10C["archs"] if a in ARCHS for act in CURVES for s in SEEDS]


ADV = config["robustness"]["adversarial"]
AA = config["robustness"]["autoattack"]
ADV_RUN = paths.RUN.replace("session{session}", "adversarial")


def autoattack_results():
    """AutoAttack results of every adversarially trained network."""
    return [f"{ADV_RUN}/autoattack.json".format(dataset=d, arch=a, activation=act, seed=s)
            for d in DATASETS for a in ADV["archs"] if a in ARCHS for act in ADV["activations"]
            for s in ADV["seeds"] or SEEDS]


def get_adversarial_args(wildcards):
    pgd = ADV[wildcards.dataset]
    return cli_args({"adversarial": True, "adv_eps": pgd["eps"], "adv_step_size": pgd["step_size"],
                     "adv_steps": pgd["steps"], "adv_warmup_epochs": pgd["warmup_epochs"],
                     "adv_clean_fraction": ADV["clean_fraction"], "adv_robust_eval": ADV["robust_eval"],
                     "adv_robust_test": ADV["robust_test"], "max_epochs": ADV["max_epochs"]})


def get_adversarial_source(wildcards):
    """Learned activations keep their session-II inner net; ReLU needs none."""
    return run_file(2, "model.pt").format(**wildcards) if wildcards.activation in LEARNED else []


def get_autoattack_args(wildcards):
    options = {"eps": AA["eps"][wildcards.dataset], "version": AA["version"], "test_limit": AA["test_limit"]
               or config["data"]["test_limit"], "split_seed": config["data"]["split_seed"],
               "batch_size": AA["batch_size"], "seed": AA["seed"], "device": config["device"]}
    if AA["attacks"]:
        options["attacks"] = AA["attacks"]
    return cli_args(options)


def robustness_targets():
    targets = [f"{paths.TABLES}/table1.csv"] if autoattack_results() else []
    if c10c_errors():
        targets += figure("fig9") + [f"{paths.TABLES}/cifar10c.csv"]
    return targets


ANALYSIS_TABLES = {name: f"{paths.TABLES}/{name}.csv"
                   for name in ("fits", "curvature_tests", "spectra", "maturation")}


def fig4_inputs():
    return {"inputs": runs(S2, "inputs.pt", ["arg2"]), "models": runs(S2, "model.pt", ["arg2"]),
            "inits": [paths.INIT.format(activation="arg2", seed=s) for s in SEEDS],
            "metrics": runs(S2, "metrics.csv", CURVES) + runs(S3, "metrics.csv", CURVES)}


def fig5_inputs():
    f = config["figures"]["fig5"]
    acts = [a for a in ("arg2", "arg2-xavier") if a in ACTIVATIONS]
    folders = [S2.format(dataset=f["dataset"], arch=f["arch"], activation=a, seed=f["seed"]) for a in acts]
    return {"snapshots": [f"{p}/snapshots.pt" for p in folders], "inputs": [f"{p}/inputs.pt" for p in folders]}


RNN_RUN = paths.RNN_RUN


def rnn_summaries(name="summary.json"):
    return [f"{RNN_RUN}/{name}".format(sequence=RNN["sequence"], activation=a, seed=s)
            for a in RNN["activations"] for s in RNN["seeds"] or SEEDS]


def analysis_figure_options(wildcards):
    """Only Fig. 7 draws examples, so changing their number leaves Fig. 8 alone."""
    return cli_args({"examples": config["figures"]["fig7"]["examples"]}) if wildcards.fig == "fig7" else ""


def get_rnn_args(wildcards):
    m, a = config["model"], config["analysis"]
    options = {"hidden": RNN["hidden"], "inner_hidden": m["inner_hidden"], "inner_depth": m["inner_depth"],
               "max_epochs": RNN["max_epochs"], **training_options("mnist"), "bins": a["input_bins"],
               "extent": a["input_extent"], "mass": a["mass"], "fit_weighting": a["fit_weighting"],
               "flat_tolerance": a["flat_tolerance"]}
    name_unless_default(options, "ridge_tolerance", a["ridge_tolerance"], 0.0)  # fitted as a recurrent run ends
    return cli_args(options)


def summary_inputs():
    """Everything the summary ranks: session-III models (test accuracy), session-II metrics (time) and models (the
    accuracy session III is paired with), parameter counts, and where they run, CIFAR-10-C errors, AutoAttack
    results and the recurrent runs."""
    inputs = {"models": runs(S3, "model.pt", CURVES), "metrics": runs(S2, "metrics.csv", CURVES),
              "session2_models": runs(S2, "model.pt", CURVES), "params": f"{paths.TABLES}/param_counts.csv"}
    optional = {"cifar10c": c10c_errors(), "autoattack": autoattack_results(),
                "rnn": rnn_summaries() if "mnist" in DATASETS else []}
    return {**inputs, **{k: v for k, v in optional.items() if v}}


def related_targets():
    targets = [f"{paths.TABLES}/{name}.csv" for name in ("summary", "versus_relu", "versus_reference")]
    targets += figure("compare") + figure("versus")
    if RNN["activations"] and "mnist" in DATASETS:
        targets += [f"{paths.TABLES}/rnn.csv"] + figure("rnn")
    return targets


def claims_inputs():
    """The tables that test the paper's claims; CIFAR-10-C and Table 1 where this config runs them."""
    inputs = {"curvature": ANALYSIS_TABLES["curvature_tests"], "spectra": ANALYSIS_TABLES["spectra"],
              "maturation": ANALYSIS_TABLES["maturation"],
              "summary_values": f"{paths.TABLES}/summary_values.json"}
    if c10c_errors():
        inputs["cifar10c"] = f"{paths.TABLES}/cifar10c.csv"
    if autoattack_results():
        inputs["table1"] = f"{paths.TABLES}/table1.csv"
    return inputs


def figure(name):
    return [f"{paths.FIGURES}/{name}.pdf", f"{paths.FIGURES}/{name}.png"]


def all_targets():
    return (figure("fig4") + figure("fig5") + figure("fig7") + figure("fig8") + [f"{paths.TABLES}/param_counts.csv"]
            + list(ANALYSIS_TABLES.values()) + robustness_targets() + related_targets()
            + [f"{paths.TABLES}/claims.csv"]
            + runs(S2, "metrics.csv", ACTIVATIONS) + runs(S3, "metrics.csv", SESSION3))
