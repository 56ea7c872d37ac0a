"""Thin wrapper of fairseq_ot.cli.prepare_aeslc (its docstring and --help say what it does)."""

from fairseq_ot.cli.prepare_aeslc import main

if __name__ == "__main__":
    main()
