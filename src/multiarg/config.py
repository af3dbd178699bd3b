"""Validation of the workflow configuration, with errors a person can act on."""
from __future__ import annotations

import shlex
from pathlib import Path

import jsonschema
import yaml


EXTENDS = "extends"  # the key naming the config file a config file is merged over
# pyautoattack's attacks_to_run for each version (a test checks them against it), to refuse a subset the chosen
# version does not run before the adversarial training that its AutoAttack jobs wait for
AUTOATTACK_ATTACKS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
                      "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")}


class ConfigError(ValueError):
    """The configuration does not match the schema or is inconsistent."""


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "contains" and "const" in error.validator_value:  # jsonschema would not name the item
        return f"{error.instance} must include {error.validator_value['const']!r}"
    return error.message


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML whose mappings note every key given twice, which PyYAML would otherwise resolve silently to the
    last (a second ``train:`` block in an overlay would drop the first block's settings)."""

    def construct_mapping(self, node, deep=False):
        lines = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' keys may be overridden: that is what they are for
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in lines:
                self.repeated.append(f"{key!r} on lines {lines[key]} and {line}")
            lines.setdefault(key, line)
        return super().construct_mapping(node, deep)


def read_config_file(path: str | Path) -> dict:
    """A YAML (or JSON) configuration file as a mapping; raise :class:`ConfigError` if a mapping repeats a key."""
    loader = _UniqueKeyLoader(Path(path).read_text(encoding="utf-8"))
    loader.repeated = []
    try:
        config = loader.get_single_data()
    finally:
        loader.dispose()
    if loader.repeated:
        raise ConfigError(f"{path}: a key is given twice in one mapping, and YAML would keep only the last: "
                          + "; ".join(loader.repeated))
    return config or {}


def merge_config(base: dict, overlay: dict) -> dict:
    """``overlay`` merged into ``base`` (which it changes and returns) as Snakemake merges ``--configfile``s:
    mappings key by key, anything else (lists included) replaced whole."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = value
    return base


def resolve_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """A configuration file with the file it ``extends`` (a path relative to it, itself resolved so) merged under
    its own keys, so that a variant of a study names only what it changes."""
    path = Path(path).resolve()
    if path in _chain:
        raise ConfigError("config files extend each other in a loop: " + " -> ".join(map(str, _chain + (path,))))
    own = read_config_file(path)
    base = own.pop(EXTENDS, None)
    if base is None:
        return own
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {EXTENDS} must be the path of one config file, not {base!r}")
    if not (path.parent / base).is_file():
        raise ConfigError(f"{path}: {EXTENDS}: no config file {path.parent / base}")
    return merge_config(resolve_config_file(path.parent / base, _chain + (path,)), own)


def load_config(*paths: str | Path) -> dict:
    """The configuration ``snakemake --configfile PATHS...`` sees: each file, with what it extends, merged over those
    before it. Written here rather than borrowed from Snakemake, which the GPU machine's benchmarks run without."""
    config: dict = {}
    for path in paths:
        merge_config(config, resolve_config_file(path))
    return config


def validate_config(config: dict, schema_path: str | Path) -> None:
    """Check ``config`` against the JSON schema and the cross-key rules; raise :class:`ConfigError`
    listing every problem as ``key.path: message``."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = [f"{_where(e)}: {_message(e)}" for e in sorted(validator.iter_errors(config), key=_where)]
    if not problems:
        problems = _consistency(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def cli_options(options: dict) -> list[str]:
    """A mapping as ``python -m multiarg`` options: ``--key value`` tokens, lists joined by commas, booleans in lower
    case (the workflow's rules and the benchmarks render a step's settings alike)."""
    tokens = []
    for key, value in options.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        elif isinstance(value, bool):
            value = str(value).lower()
        tokens += [f"--{key.replace('_', '-')}", str(value)]
    return tokens


def shell_options(options: dict) -> str:
    """:func:`cli_options` as shell text, each token quoted: an empty list stays an (empty) argument."""
    return " ".join(shlex.quote(token) for token in cli_options(options))


def pretrain_options(config: dict) -> dict:
    """Session I's settings under ``config``, as ``python -m multiarg pretrain`` takes them."""
    m = config["model"]
    return {**config["pretrain"], "inner_hidden": m["inner_hidden"], "inner_depth": m["inner_depth"]}


def _consistency(config: dict) -> list[str]:
    problems = []
    acts = config["activations"]
    for act in config["matching"]["matched"] + [config["matching"]["reference"]]:
        if act not in acts:
            problems.append(f"matching: {act!r} is not among activations {acts}")
    for act in acts:
        if act.endswith("-flops") and act not in config["matching"]["matched"]:
            problems.append(f"matching.matched: {act!r} names a FLOP-matched baseline, so it must be matched")
        if act.endswith("-width") and act in config["matching"]["matched"]:
            problems.append(f"matching.matched: {act!r} keeps the reference's widths, so it cannot be matched")
    if config["matching"]["reference"].endswith(("-flops", "-width")):
        problems.append("matching.reference: the reference is what others are matched to; it cannot be -flops "
                        "or -width")
    fig5 = config["figures"]["fig5"]
    for key, allowed in (("dataset", config["data"]["datasets"]), ("arch", config["archs"]),
                         ("seed", config["seeds"])):
        if fig5[key] not in allowed:
            problems.append(f"figures.fig5.{key}: {fig5[key]!r} is not among {allowed}")
    trials = config["analysis"]["trials"]
    if "arg2-xavier" not in acts:
        problems.append("activations: the analyses need arg2-xavier (the Xavier-initialised null)")
    if trials["arg2-xavier"] > trials["arg2"]:
        problems.append("analysis.trials.arg2-xavier: untrained Xavier nets are analysed over the inputs of the "
                        f"learned arg2 runs, so it must not exceed analysis.trials.arg2 ({trials['arg2']})")
    c10c = config["robustness"]["cifar10c"]
    if c10c["archs"] and "cifar10" in config["data"]["datasets"] and "relu" not in acts:
        problems.append("robustness.cifar10c: corruption errors are relative to ReLU, so activations must include relu")
    adv = config["robustness"]["adversarial"]
    for act in adv["activations"]:
        if act not in acts:
            problems.append(f"robustness.adversarial.activations: {act!r} is not among activations {acts}")
    for seed in adv["seeds"] or []:
        if seed not in config["seeds"]:
            problems.append(f"robustness.adversarial.seeds: {seed} is not among seeds {config['seeds']}")
    for where, seeds in (("robustness.adversarial.seeds", adv["seeds"]), ("rnn.seeds", config["rnn"]["seeds"])):
        if seeds and len(set(seeds)) < len(seeds):
            problems.append(f"{where}: {seeds} repeats a seed, whose network the tables would count twice")
    attack = config["robustness"]["autoattack"]
    if extra := sorted(set(attack["attacks"] or []) - set(AUTOATTACK_ATTACKS[attack["version"]])):
        problems.append(f"robustness.autoattack.attacks: {extra} are not among the {attack['version']} version's "
                        f"attacks {list(AUTOATTACK_ATTACKS[attack['version']])}")
    if config["summary"]["early_epochs"] > config["train"]["session2_epochs"]:
        problems.append(f"summary.early_epochs: {config['summary']['early_epochs']} is more than session II's "
                        f"{config['train']['session2_epochs']} epochs, so 'early' accuracy would be that of the whole "
                        "session")
    depth = len(config["model"]["cnn_widths"])
    if any(i >= depth for i in config["model"]["pool_after"]):
        problems.append(f"model.pool_after: layer indices must be below {depth} (the number of conv layers)")
    return problems + _sizes(config)


def _sizes(config: dict) -> list[str]:
    """What each dataset can give: the split's images, the test images each evaluation asks for, and room for the
    CNN's convolutions and 2x2 pools (known before any job runs, rather than failing in every one)."""
    from .data import COUNTS, SHAPES
    from .models import cnn_sides

    problems, d, m, robust = [], config["data"], config["model"], config["robustness"]
    for name in d["datasets"]:
        train, test = COUNTS[name]
        for key, limit in (("data.train_limit", d["train_limit"]),
                           ("robustness.adversarial.train_limit", robust["adversarial"]["train_limit"])):
            if d["val_size"] + (limit or 1) > train:
                problems.append(f"{key}: {limit} + data.val_size {d['val_size']} exceeds the {train} training "
                                f"images of {name}")
        limits = [("data.test_limit", d["test_limit"]), ("robustness.autoattack.test_limit",
                                                          robust["autoattack"]["test_limit"])]
        if name == "cifar10":
            limits.append(("robustness.cifar10c.test_limit", robust["cifar10c"]["test_limit"]))
        problems += [f"{key}: {limit} exceeds the {test} test images of {name}" for key, limit in limits
                     if limit is not None and limit > test]
        sides = cnn_sides(min(SHAPES[name][0][1:]), len(m["cnn_widths"]), m["kernel_size"], m["padding"],
                          m["pool_after"])
        if "cnn" in config["archs"] and (side := min(s for pair in sides for s in pair)) < 1:
            problems.append(f"model: {len(m['cnn_widths'])} conv layers of kernel_size {m['kernel_size']}, padding "
                            f"{m['padding']} and pools after {m['pool_after']} leave nothing of {name}'s images "
                            f"({side} pixels across)")
    return problems
