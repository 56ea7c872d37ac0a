"""Every recipe's hydra configs: one committed YAML per recipe and criterion,
composing through fairseq's hydra path to the same resolved config as the
recipe's flags through fairseq's `convert_namespace_to_omegaconf`; and one
YAML trains to the same first-update loss as its flags."""

import json

import pytest

from conftest import run_cli
from fairseq_ot.hydra_configs import (
    DATA_PLACEHOLDER,
    cli_config,
    comparable,
    compose_config,
    hydra_config_path,
)
from fairseq_ot.recipes import all_recipe_criterions, recipe_args

RECIPE_CRITERIONS = all_recipe_criterions()


@pytest.mark.parametrize("recipe,criterion", RECIPE_CRITERIONS)
def test_yaml_composes_to_the_config_of_the_flags(recipe, criterion):
    path = hydra_config_path(recipe, criterion)
    assert path.is_file(), f"run: python scripts/recipe_to_hydra.py {recipe} {criterion}"
    composed = comparable(compose_config(path.parent, criterion, [f"task.data={DATA_PLACEHOLDER}"]))
    expected = comparable(cli_config(recipe_args(recipe, criterion)))
    assert composed.keys() == expected.keys()
    for group in expected:
        assert composed[group] == expected[group], group


def first_update_loss(output):
    """From fairseq's `| train_inner | {...}` or hydra's `[train_inner][INFO] - {...}`."""
    records = [json.loads(line[line.index("{"):]) for line in output.splitlines()
               if "train_inner" in line and "{" in line]
    assert records and records[0]["num_updates"] == "1", output[-3000:]
    return records[0]["loss"]


def test_yaml_trains_like_its_flags(toy_data_bin, tmp_path):
    recipe, criterion = "toy_translation", "ot_seq"
    logging = ["--cpu", "--max-update", "1", "--log-interval", "1", "--log-format", "json", "--no-save"]
    _, flags_output = run_cli(
        "fairseq-ot-train", toy_data_bin, *recipe_args(recipe, criterion), *logging,
    )
    path = hydra_config_path(recipe, criterion)
    _, yaml_output = run_cli(
        "fairseq-ot-hydra-train", "--config-dir", path.parent, "--config-name", criterion,
        f"task.data={toy_data_bin}", "common.cpu=true", "optimization.max_update=1",
        "common.log_interval=1", "common.log_format=json", "checkpoint.no_save=true",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert first_update_loss(yaml_output) == first_update_loss(flags_output)


def test_hydra_train_prints_flag_errors_as_one_line(toy_data_bin, tmp_path):
    path = hydra_config_path("toy_translation", "ot_seq")
    code, output = run_cli(
        "fairseq-ot-hydra-train", "--config-dir", path.parent, "--config-name", "ot_seq",
        f"task.data={toy_data_bin}", "common.cpu=true", "+criterion.ot_beta=0.001",
        f"hydra.run.dir={tmp_path / 'hydra'}", check=False,
    )
    assert code == 2 and "Traceback" not in output
    assert output.splitlines()[-1] == "fairseq-ot-hydra-train: error: --ot-beta must be >= 0.04, got 0.001"
