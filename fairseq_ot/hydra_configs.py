"""Hydra configs for `fairseq-ot-hydra-train` written from a recipe's flag
files, so that the command line and the YAML train the same thing.

A YAML holds, per fairseq config group, only the values where the recipe's
flags (resolved by fairseq's own `convert_namespace_to_omegaconf`) differ from
what hydra composes from the component names alone; the data path stays a
mandatory `task.data` override.

    python scripts/recipe_to_hydra.py RECIPE CRITERION
        # writes fairseq_ot/recipes/RECIPE/hydra/CRITERION.yaml
    fairseq-ot-hydra-train --config-dir fairseq_ot/recipes/RECIPE/hydra \\
        --config-name CRITERION task.data=DATA_BIN
"""

import argparse
import tempfile
from pathlib import Path

import yaml
from fairseq import options
from fairseq.dataclass.configs import FairseqConfig
from fairseq.dataclass.initialize import add_defaults, hydra_init
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY, MODEL_DATACLASS_REGISTRY
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fairseq_ot.recipes import RECIPES_DIR, recipe_args

GROUPS = tuple(FairseqConfig.__dataclass_fields__)
DATA_PLACEHOLDER = "DATA"  # the data path given to the flags; a hydra override instead


def hydra_config_path(recipe, criterion):
    return RECIPES_DIR / recipe / "hydra" / f"{criterion}.yaml"


def cli_config(flags):
    """fairseq-train's resolved config for `flags` (without the data path)."""
    parser = options.get_training_parser()
    parsed = options.parse_args_and_arch(parser, [DATA_PLACEHOLDER, *flags])
    return convert_namespace_to_omegaconf(parsed)


def compose_config(config_dir, config_name, overrides=(), resolve=True):
    """The config fairseq's hydra_train runs: hydra composes the YAML against
    fairseq's schema stored under the YAML's name, then fairseq adds the
    registered components' defaults and resolves interpolations."""
    hydra_init(config_name)
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.1"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    add_defaults(cfg)
    if not resolve:
        return cfg
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def model_arguments(model_cfg):
    """The arguments fairseq's build_model hands the model class: a
    dataclass model's config fields, or for a legacy model the values of the
    flags its add_args declares after its architecture function has filled
    the unset ones (as fairseq does before building it)."""
    if isinstance(model_cfg, argparse.Namespace):
        values = dict(vars(model_cfg))
    else:
        values = OmegaConf.to_container(model_cfg, resolve=True, enum_to_str=True)
    arch = values.get("_name") or values.get("arch")
    if arch in MODEL_DATACLASS_REGISTRY:
        config = MODEL_DATACLASS_REGISTRY[arch]()
        return {name: values.get(name, getattr(config, name))
                for name in config.__dataclass_fields__ if name != "_name"}
    filled = argparse.Namespace(**values)
    ARCH_CONFIG_REGISTRY[arch](filled)
    parser = argparse.ArgumentParser(add_help=False)
    ARCH_MODEL_REGISTRY[arch].add_args(parser)
    return {action.dest: getattr(filled, action.dest, action.default) for action in parser._actions}


def comparable(cfg):
    """Every group of a resolved fairseq config as a plain dict; the model as
    the arguments it is built from."""
    groups = {}
    for group in GROUPS:
        value = cfg.get(group)
        if group == "model" and value is not None:
            groups[group] = model_arguments(value)
        elif isinstance(value, argparse.Namespace):
            groups[group] = dict(vars(value))
        elif OmegaConf.is_config(value):
            groups[group] = OmegaConf.to_container(value, resolve=True, enum_to_str=True)
        else:
            groups[group] = value
    return groups


def component_names(cfg):
    """The registered component of each group that has one (task, model,
    criterion, optimizer, lr_scheduler, scoring...)."""
    names = {}
    for group in GROUPS:
        value = cfg.get(group)
        name = getattr(value, "_name", None) or getattr(value, "arch", None)
        if name is not None:
            names[group] = {"_name": name}
    return names


def defaults_for(names):
    """What hydra composes from the component names alone, and the
    (group, key) pairs whose default is an interpolation such as
    lr_scheduler.lr = ${optimization.lr}: left to follow their source."""
    with tempfile.TemporaryDirectory() as folder:
        with_data = {**names, "task": {**names["task"], "data": DATA_PLACEHOLDER}}
        (Path(folder) / "names.yaml").write_text(yaml.safe_dump(with_data))
        cfg = compose_config(folder, "names", resolve=False)
    interpolated = {(group, key) for group in GROUPS if OmegaConf.is_dict(cfg.get(group))
                    for key in cfg[group] if OmegaConf.is_interpolation(cfg[group], key)}
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    return resolved, interpolated


def hydra_config(flags):
    """The YAML config (a dict) that composes to the same config as `flags`."""
    cli = cli_config(flags)
    names = component_names(cli)
    defaults, interpolated = defaults_for(names)
    wanted, defaults = comparable(cli), comparable(defaults)
    config = {}
    for group in GROUPS:
        if not isinstance(wanted[group], dict):
            continue
        changed = {key: value for key, value in wanted[group].items()
                   if key != "_name" and (group, key) not in interpolated
                   and defaults[group].get(key) != value}
        if group == "task":
            changed["data"] = "???"  # mandatory: task.data=DATA_BIN
        if changed or group in names:
            config[group] = {**names.get(group, {}), **changed}
    return config


def write_hydra_config(recipe, criterion):
    path = hydra_config_path(recipe, criterion)
    path.parent.mkdir(exist_ok=True)
    header = (
        f"# Generated by scripts/recipe_to_hydra.py {recipe} {criterion} from\n"
        f"# fairseq_ot/recipes/{recipe}/train.args and criterion_{criterion}.args:\n"
        f"# the same training as those flags. Run with\n"
        f"#   fairseq-ot-hydra-train --config-dir fairseq_ot/recipes/{recipe}/hydra \\\n"
        f"#       --config-name {criterion} task.data=DATA_BIN\n"
    )
    body = yaml.safe_dump(hydra_config(recipe_args(recipe, criterion)), sort_keys=False)
    path.write_text(header + body)
    return path
