"""Thin wrapper of fairseq_ot.cli.sweep_oracle_temperature (its docstring and --help say what it does)."""

from fairseq_ot.cli.sweep_oracle_temperature import main

if __name__ == "__main__":
    main()
