"""Thin wrapper of fairseq_ot.cli.bench_criterions (its docstring and --help say what it does)."""

from fairseq_ot.cli.bench_criterions import main

if __name__ == "__main__":
    main()
