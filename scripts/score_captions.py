"""Thin wrapper of fairseq_ot.cli.score_captions (its docstring and --help say what it does)."""

from fairseq_ot.cli.score_captions import main

if __name__ == "__main__":
    main()
