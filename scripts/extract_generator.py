"""Thin wrapper of fairseq_ot.cli.extract_generator (its docstring and --help say what it does)."""

from fairseq_ot.cli.extract_generator import main

if __name__ == "__main__":
    main()
