"""Thin wrapper of fairseq_ot.cli.bench_allocators (its docstring and --help say what it does)."""

from fairseq_ot.cli.bench_allocators import main

if __name__ == "__main__":
    main()
