#!/usr/bin/env python
"""Collect the scores of every run folder into markdown tables, one per task
and scored split: a row per run (criterion, recipe when the task has
several, seed), a column per metric, the difference to the MLE run
(label_smoothed_cross_entropy) of the same recipe and seed with its 95%
paired bootstrap interval over the test items, the hypothesis count, the
updates reached and the seconds spent in training steps. Run folders without
a scores_*.json are listed as unfinished.

    python scripts/collect_results.py RUN_DIR_OR_PARENT... [--out results.md] \
        [--resamples 1000] [--bootstrap-seed 12345] [--no-meteor] [--plot differences.png]

A run folder is one holding train.log (fairseq-train --log-format json
--log-file) or scores_SPLIT.json (fairseq_ot.evaluation.scores); a parent is
searched for run folders at any depth. The intervals
(fairseq_ot/evaluation/paired_runs.py) read both runs' generate-SPLIT.txt and
the references their scores' commands name; a difference they cannot be
computed for is given without one, the reason in a note under its table. Runs
scored on different test sets (other numbers of hypotheses, or other folders
of references) get no difference at all, only the note. A file of a run
folder that cannot be read (a scores_SPLIT.json cut short) is named in one
line, status 2, and nothing is written.
"""

import argparse
import logging
from pathlib import Path

from fairseq_ot.errors import FlagError, print_one_line
from fairseq_ot.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, TAIL_FRACTION_DENOMINATOR
from fairseq_ot.evaluation.files import UnreadableFileError, write_atomically
from fairseq_ot.evaluation.paired_runs import BootstrapSettings
from fairseq_ot.evaluation.difference_plot import difference_points, plot_differences
from fairseq_ot.evaluation.results_tables import collected_results, find_runs

# importing fairseq sets the root logger to DEBUG; matplotlib (--plot) would
# then log every font lookup
logging.getLogger().setLevel(logging.WARNING)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, metavar="RUN_DIR_OR_PARENT")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help="resampled test sets per paired bootstrap interval (default: %(default)s)")
    parser.add_argument("--bootstrap-seed", type=int, default=DEFAULT_SEED,
                        help="seed of the resampling, sacrebleu's default (default: %(default)s)")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="also plot every difference with its interval, a panel per task, split and metric")
    parser.add_argument("--no-meteor", action="store_true",
                        help="no interval for captioning's METEOR (it needs Java)")
    args = parser.parse_args(argv)
    if args.resamples < TAIL_FRACTION_DENOMINATOR:
        parser.error(f"--resamples must be at least {TAIL_FRACTION_DENOMINATOR} for a 95% interval")
    return args


def main(argv=None):
    args = parse_args(argv)
    settings = BootstrapSettings(n_resamples=args.resamples, seed=args.bootstrap_seed, meteor=not args.no_meteor)
    try:
        runs = find_runs(args.roots)
    except (FlagError, UnreadableFileError) as error:
        print_one_line(error)
        raise SystemExit(2) from None
    markdown, intervals = collected_results(runs, settings)
    print(markdown, end="")
    if args.out:
        write_atomically(args.out, markdown)
    points = difference_points(intervals)
    if args.plot:
        if not points:
            print_one_line(FlagError("--plot: no run of these has a difference with an interval to plot"))
            raise SystemExit(2)
        plot_differences(points, args.plot)
    return points


if __name__ == "__main__":
    main()
