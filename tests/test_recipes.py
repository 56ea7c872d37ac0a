import pytest
from fairseq import options

from fairseq_ot.recipes import (
    all_recipe_criterions,
    read_args_file,
    recipe_args,
    recipe_task,
    registered_criterion,
)

from conftest import USER_DIR

RECIPE_CRITERIONS = all_recipe_criterions()


def test_every_recipe_has_criterions():
    assert ("toy_translation", "ot_seq") in RECIPE_CRITERIONS


@pytest.mark.parametrize("recipe,criterion", RECIPE_CRITERIONS)
def test_recipe_flags_parse_to_their_criterion(recipe, criterion):
    flags = recipe_args(recipe, criterion)
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, ["DATA", "--user-dir", USER_DIR, *flags])
    assert args.criterion == registered_criterion(recipe, criterion)
    assert args.task == recipe_task(recipe, criterion)


def test_args_file_words_and_comments(tmp_path):
    path = tmp_path / "x.args"
    path.write_text("# a comment\n--a 1 --b '(0.9, 0.98)'  # why\n\n--c\n")
    assert read_args_file(path) == ["--a", "1", "--b", "(0.9, 0.98)", "--c"]


def test_unknown_recipe_or_criterion_names_what_exists():
    with pytest.raises(ValueError, match="recipes: .*toy_translation"):
        recipe_args("no_such_recipe", "ot_seq")
    with pytest.raises(ValueError, match="it has: .*ot_seq"):
        recipe_args("toy_translation", "no_such_criterion")


def test_a_variant_is_named_after_its_registered_criterion(tmp_path, monkeypatch):
    monkeypatch.setattr("fairseq_ot.recipes.RECIPES_DIR", tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "train.args").write_text("--task language_modeling\n")
    (tmp_path / "r" / "criterion_gjs_pi025.args").write_text("--criterion gjs --gjs-pi 0.25\n")
    (tmp_path / "r" / "criterion_cot_x.args").write_text("--criterion gjs\n")
    assert registered_criterion("r", "gjs_pi025") == "gjs"
    with pytest.raises(ValueError, match="criterion_cot_x.args: --criterion must be 'cot_x'"):
        registered_criterion("r", "cot_x")
