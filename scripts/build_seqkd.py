"""Thin wrapper of fairseq_ot.cli.build_seqkd (its docstring and --help say what it does)."""

from fairseq_ot.cli.build_seqkd import main

if __name__ == "__main__":
    main()
