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


def check_sample_length_flags(prefix, max_len_a, max_len_b):
    """Caps a * source length + b on samples: --PREFIX-max-len-a/b."""
    require(math.isfinite(max_len_a) and max_len_a >= 0, f"--{prefix}-max-len-a", "finite and >= 0",
            max_len_a)
    require(max_len_b >= 0, f"--{prefix}-max-len-b", ">= 0", max_len_b)
    require(max_len_a > 0 or max_len_b >= 1, f"--{prefix}-max-len-b", f">= 1 when --{prefix}-max-len-a is 0",
            max_len_b)
