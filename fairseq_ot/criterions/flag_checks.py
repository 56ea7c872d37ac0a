"""Errors in the plugin's flags: one exception class, which fairseq's command
lines print as one line naming the flag instead of a traceback from deep
inside fairseq's training loop."""

import atexit
import math
import os
import sys


class FlagError(ValueError):
    """A flag out of range, or a combination of flags that cannot work. The
    message starts with the flag (or names it) and fits on one line."""


def require(condition, flag, expected, value):
    """A one-line error naming the flag, raised when a criterion is built."""
    if not condition:
        raise FlagError(f"{flag} must be {expected}, got {value}")


def check_label_smoothing_flags(label_smoothing, ignore_prefix_size):
    """The flags criterions inherit from fairseq's label_smoothed_cross_entropy,
    which does not check them."""
    require(0 <= label_smoothing < 1, "--label-smoothing", "in [0, 1)", label_smoothing)
    require(ignore_prefix_size >= 0, "--ignore-prefix-size", ">= 0", ignore_prefix_size)


def require_weight(flag, value):
    """A loss weight: finite (an infinite weight makes every loss inf) and >= 0."""
    require(math.isfinite(value) and value >= 0, flag, "finite and >= 0", value)


def print_one_line(error):
    """`PROGRAM: error: MESSAGE` on stderr, as argparse reports a bad flag."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fairseq"
    print(f"{program}: error: {error}", file=sys.stderr, flush=True)


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
        print_one_line(error)
        # SystemExit cannot set the status from inside an excepthook: run the
        # exit handlers (they stop data-loader workers and flush --log-file),
        # then leave directly
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)

    one_line._fairseq_ot_one_line = classes
    sys.excepthook = one_line
