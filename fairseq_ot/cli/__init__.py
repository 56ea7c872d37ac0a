"""Console scripts: fairseq's own command-line mains with the plugin imported,
an alternative to passing `--user-dir`; the modules beside this one are the
mains of the plugin's own commands (`scripts/` holds thin wrappers of them)."""

import importlib
import logging
import os
import sys

from fairseq_ot import compat  # importing the package registers the plugin
from fairseq_ot.compat.one_line_errors import wrap_hydra_main


def _run(cli_module):
    # fairseq_cli modules set fairseq's log format with basicConfig when
    # imported, a no-op once importing fairseq_ot has logged: set it here.
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        level=os.environ.get("LOGLEVEL", "INFO").upper(),
        stream=sys.stdout,
        force=True,
    )
    importlib.import_module(f"fairseq_cli.{cli_module}").cli_main()


def train():
    _run("train")


def generate():
    _run("generate")


def interactive():
    _run("interactive")


def validate():
    _run("validate")


def hydra_train():
    wrap_hydra_main(compat.ONE_LINE_ERRORS)
    _run("hydra_train")
