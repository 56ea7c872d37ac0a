"""Thin wrapper of fairseq_ot.cli.source_dependence (its docstring and --help say what it does)."""

from fairseq_ot.cli.source_dependence import main

if __name__ == "__main__":
    main()
