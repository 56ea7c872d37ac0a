"""Write fairseq_ot/recipes/RECIPE/hydra/CRITERION.yaml, the
fairseq-ot-hydra-train config equivalent to a recipe's flag files (every
criterion of the recipe when none is named)."""

import argparse

import fairseq_ot  # noqa: F401  (registers the plugin's tasks and criterions)
from fairseq_ot.hydra_configs import write_hydra_config
from fairseq_ot.recipes import recipe_criterions


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recipe")
    parser.add_argument("criterion", nargs="*", help="default: every criterion of the recipe")
    args = parser.parse_args()
    for criterion in args.criterion or recipe_criterions(args.recipe):
        print(write_hydra_config(args.recipe, criterion))


if __name__ == "__main__":
    main()
