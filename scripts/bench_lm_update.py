"""Thin wrapper of fairseq_ot.cli.bench_lm_update (its docstring and --help say what it does)."""

from fairseq_ot.cli.bench_lm_update import main

if __name__ == "__main__":
    main()
