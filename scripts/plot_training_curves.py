"""Thin wrapper of fairseq_ot.cli.plot_training_curves (its docstring and --help say what it does)."""

from fairseq_ot.cli.plot_training_curves import main

if __name__ == "__main__":
    main()
