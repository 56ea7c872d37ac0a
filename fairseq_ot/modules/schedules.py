"""Teacher-forcing probability schedules of scheduled sampling (Bengio et
al., NeurIPS 2015, "Scheduled Sampling for Sequence Prediction with Recurrent
Neural Networks"), as functions of fairseq's update number i:

    constant          eps_i = k
    linear            eps_i = k - c i
    exponential       eps_i = k^i                  (0 < k < 1)
    inverse_sigmoid   eps_i = k / (k + exp(i / k)) (k >= 1)

every schedule floored at eps_min and held at 1 during a warm-up of pure
teacher forcing (i counts from the end of the warm-up)."""

import math

from fairseq_ot.errors import FlagError

SCHEDULES = ("constant", "linear", "exponential", "inverse_sigmoid")


def check_schedule(schedule, k, c, eps_min, warmup_updates):
    """Raise FlagError, naming the flag, for a schedule that cannot work."""
    if schedule not in SCHEDULES:
        raise FlagError(f"--ss-schedule must be one of {SCHEDULES}, got {schedule!r}")
    valid_k = {
        "constant": (0 <= k <= 1, "in [0, 1]"),
        "linear": (0 <= k <= 1, "in [0, 1]"),
        "exponential": (0 < k < 1, "in (0, 1)"),
        "inverse_sigmoid": (k >= 1, ">= 1"),
    }[schedule]
    if not valid_k[0]:
        raise FlagError(f"--ss-k must be {valid_k[1]} for the {schedule} schedule, got {k}")
    if not (math.isfinite(c) and c >= 0):  # nan or inf: k - c i is nan at i = 0
        raise FlagError(f"--ss-c must be finite and >= 0, got {c}")
    if not 0 <= eps_min <= 1:
        raise FlagError(f"--ss-min must be in [0, 1], got {eps_min}")
    if warmup_updates < 0:
        raise FlagError(f"--ss-warmup-updates must be >= 0, got {warmup_updates}")


def teacher_forcing_probability(schedule, update_num, k, c=0.0, eps_min=0.0, warmup_updates=0):
    """eps: the probability of feeding the gold token at this update."""
    if update_num < warmup_updates:
        return 1.0
    i = update_num - warmup_updates
    if schedule == "constant":
        eps = k
    elif schedule == "linear":
        eps = k - c * i
    elif schedule == "exponential":
        eps = k**i
    elif schedule == "inverse_sigmoid":
        # k / (k + exp(i / k)) written to stay finite for large i
        eps = 1.0 / (1.0 + math.exp(min(i / k - math.log(k), 700.0)))
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    return min(1.0, max(eps_min, eps))
