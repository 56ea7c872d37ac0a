"""Thin wrapper of fairseq_ot.cli.synthetic_turing_test (its docstring and --help say what it does)."""

from fairseq_ot.cli.synthetic_turing_test import main

if __name__ == "__main__":
    main()
