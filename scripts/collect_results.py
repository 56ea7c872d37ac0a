"""Thin wrapper of fairseq_ot.cli.collect_results (its docstring and --help say what it does)."""

from fairseq_ot.cli.collect_results import main

if __name__ == "__main__":
    main()
