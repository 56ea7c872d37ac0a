"""The plugin's flag errors and refused checkpoints as one line on stderr.

What it patches: `sys.excepthook` (Python), and `fairseq_cli.hydra_train._hydra_main`
(fairseq 0.12.x) inside `fairseq-ot-hydra-train`.

Why: a bad flag is found when fairseq builds the criterion, task or model,
or loads a checkpoint, deep inside its command-line mains: the user would
see a traceback of dozens of frames for a message of one line. argparse's
convention (`PROGRAM: error: MESSAGE`, exit status 2) is what fairseq users
already read for its own flags. hydra catches a task's exceptions and prints
their tracebacks before any excepthook sees them, so its main is wrapped too.

fairseq's trainer re-raises any error of loading a checkpoint's weights as
a bare `Exception("Cannot load model parameters from checkpoint ...")`
(`Trainer.load_checkpoint`, fairseq 0.12.x), so a refused warm start
(`--finetune-from-model`, `--mediator-init`) reaches the hook as the context
of that exception: the hook prints the plugin's error from the chain.

No longer needed when: fairseq validates plugin configs itself before
training (it does not in 0.12.x)."""

import atexit
import importlib
import os
import sys

from fairseq_ot.errors import print_one_line


def install_excepthook(classes) -> None:
    """Print an uncaught exception of one of `classes` as
    `PROGRAM: error: MESSAGE` on stderr and exit with status 2, as argparse
    does for its own flag errors; anything else goes to the previous hook.
    Interactive sessions keep their tracebacks. Idempotent."""
    previous = sys.excepthook
    if getattr(previous, "_fairseq_ot_one_line", None) == classes:
        return

    def one_line(kind, error, traceback):
        cause = one_line_cause(error, classes)
        if cause is None or hasattr(sys, "ps1") or sys.flags.interactive:
            previous(kind, error, traceback)
            return
        # torch.distributed's excepthook (set by init_process_group, so under
        # torchrun) calls this one with sys.stderr swapped for a buffer that
        # it prints after this hook returns, which it never does
        sys.stderr = sys.__stderr__
        print_one_line(cause)
        # SystemExit cannot set the status from inside an excepthook: run the
        # exit handlers (they stop data-loader workers and flush --log-file),
        # then leave directly
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)

    one_line._fairseq_ot_one_line = classes
    sys.excepthook = one_line


def one_line_cause(error, classes):
    """`error` if it is one of `classes`, else the first exception of
    `classes` that it was raised while handling (fairseq's trainer wraps
    checkpoint loading errors in a bare Exception); None if there is none."""
    while error is not None and not isinstance(error, classes):
        error = error.__context__
    return error


def wrap_hydra_main(classes) -> None:
    """Make `fairseq_cli.hydra_train` report `classes` in one line and leave
    by SystemExit(2), which hydra lets through. Imported only by the hydra
    console script: importing `fairseq_cli` sets fairseq's log format."""
    hydra_cli = importlib.import_module("fairseq_cli.hydra_train")
    run_task = hydra_cli._hydra_main
    if getattr(run_task, "_fairseq_ot_one_line", False):
        return

    def one_line_errors(cfg, **kwargs):
        try:
            return run_task(cfg, **kwargs)
        except Exception as error:
            cause = one_line_cause(error, classes)
            if cause is None:
                raise
            print_one_line(cause)
            raise SystemExit(2) from None

    one_line_errors._fairseq_ot_one_line = True
    hydra_cli._hydra_main = one_line_errors
