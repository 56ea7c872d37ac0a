"""Console scripts: fairseq's own command-line mains with the plugin imported,
an alternative to passing `--user-dir`; the modules beside this one are the
mains of the plugin's own commands (`scripts/` holds thin wrappers of them)."""

import importlib
import logging
import os
import sys

from fairseq import options

from fairseq_ot import compat  # importing the package registers the plugin
from fairseq_ot.checkpoints import files as checkpoint_files
from fairseq_ot.compat.one_line_errors import wrap_hydra_main

logger = logging.getLogger(__name__)


def _run(cli_module, prepare=None):
    # fairseq_cli modules set fairseq's log format with basicConfig when
    # imported, a no-op once importing fairseq_ot has logged: set it here.
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        level=os.environ.get("LOGLEVEL", "INFO").upper(),
        stream=sys.stdout,
        force=True,
    )
    if prepare is not None:
        prepare()
    importlib.import_module(f"fairseq_cli.{cli_module}").cli_main()


def train():
    _run("train", prepare=_restore_checkpoint_last)


def _restore_checkpoint_last():
    """fairseq resumes from SAVE_DIR/checkpoint_last.pt unless --restore-file
    names another file: a damaged one (a job killed while fairseq copied it)
    is kept aside and replaced by the intact checkpoint with the most updates. Done by the
    job's first process alone, before fairseq's distributed set-up, which
    holds the other processes back until this one joins them."""
    args = options.parse_args_and_arch(options.get_training_parser())
    if args.restore_file != checkpoint_files.LAST or not checkpoint_files.first_process(
            args.distributed_rank):
        return
    restored = checkpoint_files.restore_checkpoint_last(args.save_dir)
    if restored is not None:
        logger.warning(restored)


def generate():
    _run("generate")


def interactive():
    _run("interactive")


def validate():
    _run("validate")


def hydra_train():
    wrap_hydra_main(compat.ONE_LINE_ERRORS)
    _run("hydra_train")
