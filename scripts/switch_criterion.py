"""Thin wrapper of fairseq_ot.cli.switch_criterion (its docstring and --help say what it does)."""

from fairseq_ot.cli.switch_criterion import main

if __name__ == "__main__":
    main()
