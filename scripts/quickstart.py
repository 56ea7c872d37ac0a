"""Thin wrapper of fairseq_ot.cli.quickstart (its docstring and --help say what it does)."""

from fairseq_ot.cli.quickstart import main

if __name__ == "__main__":
    main()
