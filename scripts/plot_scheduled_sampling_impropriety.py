"""Thin wrapper of fairseq_ot.cli.plot_scheduled_sampling_impropriety (its docstring and --help say what it does)."""

from fairseq_ot.cli.plot_scheduled_sampling_impropriety import main

if __name__ == "__main__":
    main()
