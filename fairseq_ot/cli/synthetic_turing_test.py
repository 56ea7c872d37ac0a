#!/usr/bin/env python
"""The synthetic Turing test of SeqGAN / CoT (Lu et al., ICML 2019, Table 1)
as a benchmark: every method trains the same small LSTM language model on
10,000 samples of the oracle LSTM for its planned updates (or, with
--minutes, for the same wall-clock budget), and each
saved checkpoint is scored by NLL_oracle (the oracle's per-token NLL of the
model's samples) and NLL_test (the model's per-token NLL of 10,000 held-out
oracle samples).

    python scripts/synthetic_turing_test.py [--minutes M] [--parallel 2]
        [--methods mle,scheduled_sampling,cot,gjs_0.25,gjs_0.5,gjs_0.75]
        [--out synthetic_output] [--eval-samples 10000] [--curve-samples 2000]
        [--device cpu|cuda] [--mle-updates 4900] [--ss-updates 2750] [--mediator-updates 1100]

Writes OUT/results.json, OUT/results.md and OUT/nll_oracle_vs_time.png;
training logs and checkpoints under OUT/runs/METHOD. Data and runs already in
OUT are reused: an interrupted run resumes from its last checkpoint, and more
planned updates (or a larger --minutes) extend finished runs with the flags of
their first launch (the scheduled sampling slope included).

The budget is the updates planned for each method (--mle-updates,
--ss-updates, --mediator-updates), counts, not a machine's speed: a run trains
exactly that many, saves a checkpoint every tenth of them, and scheduled
sampling's eps reaches its floor at half of --ss-updates. Their defaults are
what 10 minutes gave at the updates per minute measured on the development
machine. --minutes M bounds every method by M minutes of fairseq's cumulative
training time instead (the equal-time comparison: methods whose updates cost
more train fewer); the planned updates then set only the checkpoint interval
and the schedule, and on a faster machine a run saves more checkpoints (at
most 10 earlier ones are scored) and eps reaches its floor earlier.

Differences from the reference setup: one Adam optimizer (lr 1e-3, betas
0.9, 0.95) trains generator and mediator together, where the reference gives
the mediator lr 3e-3; training is bounded by updates or time, not by convergence.
"""

import argparse
from pathlib import Path

from fairseq_ot.synthetic.turing_test import METHODS, PLANNED_UPDATES, run

# flag -> the key of PLANNED_UPDATES it sets, and the measured updates per
# minute its default comes from (10 minutes of them)
PLANNED_UPDATE_FLAGS = {
    "--mle-updates": ("mle", "mle", 490),
    "--ss-updates": ("scheduled_sampling", "scheduled_sampling", 275),
    "--mediator-updates": ("mediator", "cot and gjs_*", 110),
}


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="The planned updates are counts, not a machine's speed: each method trains exactly "
               "its count unless --minutes bounds it by time; the defaults are what 10 minutes gave "
               "on the development machine.")
    parser.add_argument("--minutes", type=float, default=None,
                        help="bound every method by this many minutes of fairseq's cumulative training "
                             "time (wall clock) instead of its planned updates (default: the planned updates)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--parallel", type=int, default=2, help="runs trained at once")
    parser.add_argument("--out", type=Path, default=Path("synthetic_output"))
    parser.add_argument("--eval-samples", type=int, default=10000,
                        help="model samples scored by the oracle for each final checkpoint")
    parser.add_argument("--curve-samples", type=int, default=2000,
                        help="model samples for each intermediate checkpoint")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where fairseq-train runs (scoring stays on the CPU)")
    for flag, (key, methods, per_minute) in PLANNED_UPDATE_FLAGS.items():
        schedule = ("; eps of scheduled sampling reaches its floor at half of them"
                    if key == "scheduled_sampling" else "")
        parser.add_argument(flag, type=int, default=PLANNED_UPDATES[key], metavar="N",
                            help=f"updates planned for {methods}: its budget without --minutes, a checkpoint "
                                 f"every tenth of them{schedule} (default %(default)s: what 10 minutes gave at the "
                                 f"{per_minute} updates per minute measured on the development machine)")
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    args.planned_updates = {key: getattr(args, flag[2:].replace("-", "_"))
                            for flag, (key, _, _) in PLANNED_UPDATE_FLAGS.items()}
    if min(args.planned_updates.values()) < 1:
        parser.error("the planned updates must be >= 1")
    if args.minutes is not None and args.minutes <= 0:
        parser.error(f"--minutes must be > 0, got {args.minutes:g}")
    return args


def main():
    run(parse_args())


if __name__ == "__main__":
    main()
