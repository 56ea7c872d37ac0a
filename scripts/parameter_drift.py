"""Thin wrapper of fairseq_ot.cli.parameter_drift (its docstring and --help say what it does)."""

from fairseq_ot.cli.parameter_drift import main

if __name__ == "__main__":
    main()
