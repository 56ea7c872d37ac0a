"""Thin wrapper of fairseq_ot.cli.recipe_to_hydra (its docstring and --help say what it does)."""

from fairseq_ot.cli.recipe_to_hydra import main

if __name__ == "__main__":
    main()
