"""Console scripts: fairseq's own command-line mains with the plugin imported,
an alternative to passing `--user-dir`."""

import importlib
import logging
import os
import sys

import fairseq_ot  # registers criterions, tasks and models
from fairseq_ot.criterions.flag_checks import print_one_line


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
    # hydra catches the task's exceptions and prints them with a traceback
    # before fairseq_ot's excepthook could see them: report the plugin's flag
    # errors inside the task, as one line, and leave by SystemExit, which
    # hydra lets through
    hydra_cli = importlib.import_module("fairseq_cli.hydra_train")
    run_task = hydra_cli._hydra_main

    def one_line_errors(cfg, **kwargs):
        try:
            return run_task(cfg, **kwargs)
        except fairseq_ot.ONE_LINE_ERRORS as error:
            print_one_line(error)
            raise SystemExit(2) from None

    hydra_cli._hydra_main = one_line_errors
    _run("hydra_train")
