"""Errors whose message says all: a bad flag, and a model that has diverged.
fairseq's command lines print them as one line instead of a traceback from
deep inside its training loop (`fairseq_ot.compat.one_line_errors`)."""

import functools
import math
import os
import sys

import torch


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


def print_one_line(error, kind="error"):
    """`PROGRAM: error: MESSAGE` on stderr, as argparse reports a bad flag
    (`kind` "warning": `PROGRAM: warning: MESSAGE`, for input that is used
    but looks wrong)."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fairseq"
    # one write, newline included: the ranks of a torchrun job print theirs
    # to one stream at the same time
    sys.stderr.write(f"{program}: {kind}: {error}\n")
    sys.stderr.flush()


def print_or_quit(text):
    """`text` and a newline on stdout; when its reader has closed the pipe
    (`... | head -1`), exit with status 1 and nothing on stderr, as a
    command in a pipeline should, instead of a BrokenPipeError traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python flushes stdout again at exit and would report the same error
        # there: later writes go to the null device
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


def check_sample_length_flags(prefix, max_len_a, max_len_b):
    """Caps a * source length + b on samples: --PREFIX-max-len-a/b."""
    require(math.isfinite(max_len_a) and max_len_a >= 0, f"--{prefix}-max-len-a", "finite and >= 0",
            max_len_a)
    require(max_len_b >= 0, f"--{prefix}-max-len-b", ">= 0", max_len_b)
    require(max_len_a > 0 or max_len_b >= 1, f"--{prefix}-max-len-b", f">= 1 when --{prefix}-max-len-a is 0",
            max_len_b)


class ModelDiverged(RuntimeError):
    """The model's loss or parameters are no longer finite: no flag of the
    objective can help, the learning rate (or precision) must change."""


def stops_on_divergence(forward):
    """Decorate a criterion's `forward(model, sample, reduce)`: a non-finite
    loss, or any error raised while the model's parameters are non-finite (a
    solver's underflow, sampling from NaN probabilities), becomes one
    ModelDiverged naming the update (the criterion's `num_updates`, when it
    follows fairseq's count). The check costs one scalar sync per step, which
    fairseq's logging of the loss makes anyway; the parameters are read only
    after a failure. A forward that feeds its outputs to a solver checks them
    first with `require_finite`."""

    @functools.wraps(forward)
    def guarded(self, model, sample, reduce=True):
        try:
            loss, sample_size, logging_output = forward(self, model, sample, reduce)
        except ModelDiverged:
            raise
        except Exception as error:
            if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                raise
            raise ModelDiverged(_diverged(self, model, "its parameters hold NaN or inf")) from error
        require_finite(self, model, loss, "the loss")
        return loss, sample_size, logging_output

    return guarded


def require_finite(criterion, model, value, what):
    """ModelDiverged unless the tensor `value` (`what`: "the loss") is finite."""
    if not bool(torch.isfinite(value).all()):
        total = value.detach().float().sum().item()
        raise ModelDiverged(_diverged(criterion, model, f"{what} is {total}"))


def _diverged(criterion, model, what):
    updates = getattr(criterion, "num_updates", None)
    if updates is None:
        when = "in training" if model.training else "in validation"
    else:
        when = f"at update {updates + 1}" if model.training else f"in validation after update {updates}"
    return (f"the model diverged {when}: {what}; lower --lr (or clip gradients with --clip-norm, or "
            f"train in float32 or bfloat16 instead of float16); the checkpoints written before are kept")
