"""Errors in the plugin's flags: one exception class, which fairseq's command
lines print as one line naming the flag instead of a traceback from deep
inside fairseq's training loop (`fairseq_ot.compat.one_line_errors`)."""

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
    # one write, newline included: the ranks of a torchrun job print theirs
    # to one stream at the same time
    sys.stderr.write(f"{program}: error: {error}\n")
    sys.stderr.flush()
