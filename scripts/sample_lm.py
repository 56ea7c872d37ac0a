"""Thin wrapper of fairseq_ot.cli.sample_lm (its docstring and --help say what it does)."""

from fairseq_ot.cli.sample_lm import main

if __name__ == "__main__":
    main()
