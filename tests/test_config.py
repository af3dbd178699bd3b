import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from multiarg.config import ConfigError, load_config, merge_config, read_config_file, validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PAPER = yaml.safe_load((REPO / "config.yaml").read_text())


def _merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_schema_lists_every_inner_net_kernel_and_compile_mode():
    from multiarg.activations import KERNELS
    from multiarg.train import COMPILE_MODES

    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["inner_kernel"]["enum"] == list(KERNELS)
    assert schema["properties"]["compile"]["enum"] == list(COMPILE_MODES)


def test_every_config_key_is_described():
    """Every property of the schema, at any depth ($defs included), says what its key does. A key with no value
    flags a flow-style description cut short at an unquoted comma."""
    undescribed, cut = [], []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if value is None:
                    cut.append(f"{path}/{key}")
            for key, sub in (node.get("properties") or {}).items():
                description = sub.get("description") if isinstance(sub, dict) else None
                if not (isinstance(description, str) and description.strip()):
                    undescribed.append(f"{path}/properties/{key}")
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(yaml.safe_load(SCHEMA.read_text()), "#")
    assert not undescribed, f"schema properties without a description: {undescribed}"
    assert not cut, f"schema keys without a value (an unquoted comma in a flow-style description?): {cut}"


def test_shipped_configs_are_valid():
    validate_config(PAPER, SCHEMA)
    for extra in (REPO / "workflow" / "configs").glob("*.yaml"):
        validate_config(load_config(REPO / "config.yaml", extra), SCHEMA)


@pytest.mark.parametrize("change,message", [
    ({"seeds": [0, "one"]}, "seeds.1: 'one' is not of type 'integer'"),
    ({"train": {"lr": -1}}, "train.lr: -1 is less than or equal to the minimum of 0"),
    ({"train": {"epochs": 3}}, "train: Additional properties are not allowed ('epochs' was unexpected)"),
    ({"activations": ["arg2", "gelu"]}, "activations.1: 'gelu' does not match"),
    ({"activations": ["relu"]}, "activations: ['relu'] must include 'arg2'"),
    ({"data": {"datasets": ["imagenet"]}}, "data.datasets.0: 'imagenet' is not one of ['mnist', 'cifar10']"),
    ({"figures": {"fig5": {"seed": 9}}}, "figures.fig5.seed: 9 is not among [0, 1, 2, 3]"),
    ({"matching": {"matched": ["arg3"]}}, "matching: 'arg3' is not among activations"),
    ({"matching": {"widening": "stretch"}}, "matching.widening: 'stretch' is not one of ['offset', 'scale']"),
    ({"analysis": {"ridge_tolerance": 0.5}}, "analysis.ridge_tolerance: 0.5 is greater than or equal to the maximum"),
    ({"activations": ["arg2", "arg2-xavier", "relu", "relu-flops"]}, "'relu-flops' names a FLOP-matched baseline"),
    ({"activations": ["arg2", "arg2-xavier", "relu", "relu-flops"], "matching": {"reference": "relu-flops"}},
     "matching.reference: the reference is what others are matched to; it cannot be -flops"),
    ({"activations": ["arg2", "arg2-xavier-flops"]}, "activations.1: 'arg2-xavier-flops' does not match"),
    ({"activations": ["arg2", "arg2-xavier", "relu-width"], "matching": {"matched": ["relu-width"]}},
     "'relu-width' keeps the reference's widths, so it cannot be matched"),
    ({"model": {"pool_after": [0, 7]}}, "model.pool_after: layer indices must be below 4"),
    ({"analysis": {"trials": {"arg2": 2, "arg2-xavier": 3, "arg3": 0}}}, "analysis.trials.arg2-xavier: untrained"),
    ({"analysis": {"fit_weighting": "cells"}}, "analysis.fit_weighting: 'cells' is not one of"),
    ({"data": {"val_size": 59_900, "train_limit": 300}}, "data.train_limit: 300 + data.val_size 59900 exceeds"),
    ({"robustness": {"adversarial": {"train_limit": 59_000}}}, "robustness.adversarial.train_limit: 59000 + data.val"),
    ({"data": {"test_limit": 20_000}}, "data.test_limit: 20000 exceeds the 10000 test images of mnist"),
    ({"robustness": {"autoattack": {"test_limit": 10_001}}}, "robustness.autoattack.test_limit: 10001 exceeds"),
    ({"robustness": {"cifar10c": {"test_limit": 10_001}}}, "robustness.cifar10c.test_limit: 10001 exceeds the 10000"),
    ({"model": {"cnn_widths": [4] * 6, "pool_after": [0, 1, 2, 3, 4, 5]}}, "leave nothing of mnist's images"),
    ({"model": {"padding": 0}}, "kernel_size 3, padding 0 and pools after [0, 1, 2, 3] leave nothing of mnist's"),
    ({"model": {"kernel_size": 41, "padding": 0, "pool_after": []}}, "leave nothing of cifar10's images"),
    ({"model": {"pool_after": [0, 4]}}, "model.pool_after: layer indices must be below 4"),  # the boundary index
    ({"robustness": {"adversarial": {"seeds": [9]}}}, "robustness.adversarial.seeds: 9 is not among seeds"),
    ({"activations": ["arg2", "arg2-xavier", "arg1"]}, "robustness.cifar10c: corruption errors are relative to ReLU"),
    ({"compile": "max-autotune"}, "compile: 'max-autotune' is not one of ['none', 'default', 'reduce-overhead']"),
    ({"rnn": {"seeds": [1, 1]}}, "rnn.seeds: [1, 1] repeats a seed, whose network the tables would count twice"),
    ({"robustness": {"adversarial": {"seeds": [0, 0]}}}, "robustness.adversarial.seeds: [0, 0] repeats a seed"),
    ({"robustness": {"autoattack": {"version": "standard", "attacks": ["fab", "apgd-ce"]}}},
     "robustness.autoattack.attacks: ['fab'] are not among the standard version's attacks"),
    ({"summary": {"early_epochs": 300}}, "summary.early_epochs: 300 is more than session II's 200 epochs"),
])
def test_bad_configs_are_rejected_with_the_key_and_the_reason(change, message):
    with pytest.raises(ConfigError) as err:
        validate_config(_merge(PAPER, change), SCHEMA)
    assert message in str(err.value)


@pytest.mark.parametrize("text,message", [
    ("train:\n  patience: zero\n", "train.patience: 'zero' is not of type 'integer'"),
    ("train:\n  lr: 0.01\ntrain:\n  patience: 3\n", "'train' on lines 1 and 3"),
])
def test_snakemake_refuses_a_bad_config(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(bad)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_a_key_given_twice_is_refused_with_its_lines(tmp_path):
    twice = tmp_path / "twice.yaml"
    twice.write_text("train:\n  lr: 0.01\nseeds: [0]\ntrain:\n  patience: 3\n"
                     "model:\n  dropout: 0.1\n  dropout: 0.2\n")
    with pytest.raises(ConfigError) as err:
        read_config_file(twice)
    assert "'train' on lines 1 and 4" in str(err.value) and "'dropout' on lines 7 and 8" in str(err.value)
    once = tmp_path / "once.yaml"
    once.write_text("base: &b {lr: 0.01, patience: 2}\ntrain:\n  <<: *b\n  patience: 3\nother: {lr: 0.01}\n")
    assert read_config_file(once)["train"] == {"lr": 0.01, "patience": 3}  # overriding a merged key is no repeat
    for shipped in [REPO / "config.yaml", *(REPO / "workflow" / "configs").glob("*.yaml")]:
        assert read_config_file(shipped) == yaml.safe_load(shipped.read_text())


def test_config_files_merge_as_snakemake_merges_them(tmp_path):
    """Benchmarks and tests read a run's configuration without Snakemake; it must be the one Snakemake sees."""
    from snakemake.utils import update_config

    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("train: {lr: 0.01, epochs: [1, 2]}\nseeds: [0, 1]\nkeep: 1\n")
    second.write_text("train: {epochs: [3]}\nseeds: [2]\nnew: {a: 1}\n")
    assert load_config(first, second) == {"train": {"lr": 0.01, "epochs": [3]}, "seeds": [2], "keep": 1,
                                          "new": {"a": 1}}
    for overlay in (REPO / "workflow" / "configs").glob("*.yaml"):
        chain = [read_config_file(overlay)]  # the file, then what it extends, and so on
        while "extends" in chain[-1]:
            chain.append(read_config_file(overlay.parent / chain[-1].pop("extends")))
        expected = read_config_file(REPO / "config.yaml")
        for layer in reversed(chain):
            update_config(expected, layer)
        assert load_config(REPO / "config.yaml", overlay) == expected, overlay.name


def test_a_config_file_extends_the_file_it_names_under_its_own_keys(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text("train: {lr: 0.01, epochs: [1, 2]}\nseeds: [0, 1]\nscale: base\n")
    (tmp_path / "sub" / "mid.yaml").write_text("extends: ../base.yaml\ntrain: {epochs: [3]}\nscale: mid\n")
    top = tmp_path / "sub" / "top.yaml"
    top.write_text("extends: mid.yaml\nseeds: [4]\n")
    assert load_config(top) == {"train": {"lr": 0.01, "epochs": [3]}, "seeds": [4], "scale": "mid"}
    assert load_config(tmp_path / "base.yaml", top)["scale"] == "mid"  # a later file wins over an earlier one


@pytest.mark.parametrize("files,message", [
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "config files extend each other in a loop"),
    ({"a.yaml": "extends: gone.yaml\n"}, "extends: no config file"),
    ({"a.yaml": "extends: [b.yaml, c.yaml]\n"}, "extends must be the path of one config file"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "seeds: [0]\nseeds: [1]\n"}, "'seeds' on lines 1 and 2"),
])
def test_a_bad_extends_is_refused(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(tmp_path / "a.yaml")


def test_snakemake_reads_an_extending_config_as_the_whole_file_it_stands_for(tmp_path):
    """Snakemake does not know ``extends``; the workflow reads such a file again, ``--config`` over it, in the order
    Snakemake reads a whole file, since the order in which a mapping's keys come reaches some commands."""
    demo = REPO / "workflow" / "configs" / "demo.yaml"
    change = {"train": {"session2_epochs": 4}, "pretrain": {"boundary": "reflect"}}
    variant, whole = tmp_path / "variant.yaml", tmp_path / "whole.yaml"
    variant.write_text(f"extends: {demo}\n" + yaml.safe_dump(change))
    whole.write_text(yaml.safe_dump(merge_config(read_config_file(demo), change), sort_keys=False))
    targets = ["results/runs/mnist/mlp/relu/seed0/session2/model.pt", "results/init/arg2/seed0.pt"]
    commands = []
    for configfile in (variant, whole):
        result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "--forceall",
                                 "--configfile", str(configfile), "--config", "inner_kernel=chunked", "--", *targets],
                                cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        commands.append(sorted(line for line in result.stdout.splitlines() if "python -m multiarg" in line))
    assert commands[0] == commands[1] and len(commands[0]) == 3  # preparing the data, session I and session II
    train = next(line for line in commands[0] if "train --session 2" in line)
    assert "--max-epochs 4 " in train  # the variant's
    assert "--batch-size 32 " in train and "--train-limit 400 " in train  # the demo's, under it
    assert "--inner-kernel chunked " in train  # --config's, over both
    assert "--steps 500 --boundary reflect --cells 5 " in next(line for line in commands[0] if "pretrain" in line)


def test_options_reach_the_command_line_as_one_argument_each_even_when_empty():
    """An empty list (no pooling after any conv layer) is an empty argument, not a missing one."""
    import shlex

    from multiarg.cli import _ints
    from multiarg.config import shell_options

    tokens = shlex.split(shell_options({"pool_after": [], "dropout": 0.5, "note": "two words"}))
    assert tokens == ["--pool-after", "", "--dropout", "0.5", "--note", "two words"] and _ints(tokens[1]) == ()


def test_the_autoattack_attacks_the_config_checks_against_are_pyautoattacks():
    pytest.importorskip("pyautoattack")
    from torch import nn

    from multiarg.adversarial import make_adversary
    from multiarg.config import AUTOATTACK_ATTACKS

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 10))
    for version, attacks in AUTOATTACK_ATTACKS.items():
        assert tuple(make_adversary(model, 0.1, version, "cpu", 0).attacks_to_run) == attacks
