import pytest
from fairseq import options

from fairseq_ot.recipes import RECIPES_DIR, read_args_file, recipe_args, recipe_criterions, recipe_task

from conftest import USER_DIR

RECIPE_CRITERIONS = [
    (folder.name, criterion)
    for folder in sorted(RECIPES_DIR.glob("*"))
    if (folder / "train.args").is_file()
    for criterion in recipe_criterions(folder.name)
]


def test_every_recipe_has_criterions():
    assert ("toy_translation", "ot_seq") in RECIPE_CRITERIONS


@pytest.mark.parametrize("recipe,criterion", RECIPE_CRITERIONS)
def test_recipe_flags_parse_to_their_criterion(recipe, criterion):
    flags = recipe_args(recipe, criterion)
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, ["DATA", "--user-dir", USER_DIR, *flags])
    assert args.criterion == criterion
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
