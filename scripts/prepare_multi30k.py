"""Thin wrapper of fairseq_ot.cli.prepare_multi30k (its docstring and --help say what it does)."""

from fairseq_ot.cli.prepare_multi30k import main

if __name__ == "__main__":
    main()
