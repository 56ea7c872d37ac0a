#!/usr/bin/env python
"""The synthetic Turing test of SeqGAN / CoT (Lu et al., ICML 2019, Table 1)
as a benchmark: every method trains the same small LSTM language model on
10,000 samples of the oracle LSTM for the same wall-clock budget, and each
saved checkpoint is scored by NLL_oracle (the oracle's per-token NLL of the
model's samples) and NLL_test (the model's per-token NLL of 10,000 held-out
oracle samples).

    python scripts/synthetic_turing_test.py [--minutes 10] [--parallel 2]
        [--methods mle,scheduled_sampling,cot,gjs_0.25,gjs_0.5,gjs_0.75]
        [--out synthetic_output] [--eval-samples 10000] [--curve-samples 2000]
        [--device cpu|cuda] [--mle-updates 4900] [--ss-updates 2750] [--mediator-updates 1100]

Writes OUT/results.json, OUT/results.md and OUT/nll_oracle_vs_time.png;
training logs and checkpoints under OUT/runs/METHOD. Data and runs already in
OUT are reused: the budget is fairseq's cumulative training time, kept in the
checkpoints, so an interrupted run resumes from its last checkpoint and a
larger --minutes extends finished runs with the flags of their first launch
(the scheduled sampling slope included).

The updates planned for each method (--mle-updates, --ss-updates,
--mediator-updates) are counts, not a machine's speed: a run saves a
checkpoint every tenth of them, and scheduled sampling's eps reaches its floor
at half of --ss-updates. Their defaults are what the old default 10 minutes
gave at the updates per minute measured on the development machine, so the
default experiment is unchanged; on a faster machine a run saves more
checkpoints (at most 10 earlier ones are scored) and eps reaches its floor
earlier in the budget.

Differences from the reference setup: one Adam optimizer (lr 1e-3, betas
0.9, 0.95) trains generator and mediator together, where the reference gives
the mediator lr 3e-3; training is bounded by time, not epochs.
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
        epilog="The planned updates are counts, not a machine's speed: the defaults are what the "
               "old default --minutes 10 gave on the development machine, so the default experiment "
               "is unchanged.")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="training budget of every method: fairseq's cumulative training time "
                             "(wall clock), in minutes (default %(default)s)")
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
                            help=f"updates planned for {methods}: a checkpoint every tenth of them{schedule} "
                                 f"(default %(default)s: what the old default budget, 10 minutes, gave at the "
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
    return args


def main():
    run(parse_args())


if __name__ == "__main__":
    main()
