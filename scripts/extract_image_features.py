"""Thin wrapper of fairseq_ot.cli.extract_image_features (its docstring and --help say what it does)."""

from fairseq_ot.cli.extract_image_features import main

if __name__ == "__main__":
    main()
