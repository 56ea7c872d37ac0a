"""Thin wrapper of fairseq_ot.cli.plot_cot_gamma_estimator (its docstring and --help say what it does)."""

from fairseq_ot.cli.plot_cot_gamma_estimator import main

if __name__ == "__main__":
    main()
