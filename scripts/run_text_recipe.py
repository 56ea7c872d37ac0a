"""Thin wrapper of fairseq_ot.cli.run_text_recipe (its docstring and --help say what it does)."""

from fairseq_ot.cli.run_text_recipe import main

if __name__ == "__main__":
    main()
