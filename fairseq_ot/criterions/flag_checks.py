"""Errors in the plugin's flags: one exception class, which fairseq's command
lines print as one line naming the flag instead of a traceback from deep
inside fairseq's training loop."""

import logging
import os
import sys


class FlagError(ValueError):
    """A flag out of range, or a combination of flags that cannot work. The
    message starts with the flag (or names it) and fits on one line."""


def require(condition, flag, expected, value):
    """A one-line error naming the flag, raised when a criterion is built."""
    if not condition:
        raise FlagError(f"{flag} must be {expected}, got {value}")


def install_one_line_errors(*classes):
    """Print an uncaught exception of one of `classes` as
    `PROGRAM: error: MESSAGE` on stderr and exit with status 2, as argparse
    does for its own flag errors; anything else goes to the previous hook.
    Interactive sessions keep their tracebacks. Idempotent."""
    previous = sys.excepthook
    if getattr(previous, "_fairseq_ot_one_line", None) == classes:
        return

    def one_line(kind, error, traceback):
        if not issubclass(kind, classes) or hasattr(sys, "ps1") or sys.flags.interactive:
            previous(kind, error, traceback)
            return
        program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fairseq"
        logging.shutdown()  # flush --log-file before leaving without Python's teardown
        print(f"{program}: error: {error}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # inside an excepthook SystemExit cannot set the status: leave directly
        os._exit(2)

    one_line._fairseq_ot_one_line = classes
    sys.excepthook = one_line
