#!/usr/bin/env python
"""Training curves of several fairseq runs side by side: one subplot per
metric, one line per run, against the update number, read from each run's
train.log (fairseq-train --log-format json --log-file RUN_DIR/train.log).

    python scripts/plot_training_curves.py RUN_DIR... --out curves.png [--metrics loss,ot_loss,bleu]

A metric logged in the training statistics (loss, nll_loss, ot_loss, ...) is
drawn from them, one point every --log-interval updates. Any other metric
comes from the validation of the "valid" subset: valid_loss, valid_bleu, or
bleu for short. A run without a metric is skipped in that subplot with a
note; a metric that no run has is an error.
"""

import argparse
import logging
import sys
from pathlib import Path

from fairseq_ot.evaluation.training_curves import plot_training_curves

# importing fairseq sets the root logger to DEBUG; matplotlib would then log
# every font lookup
logging.getLogger().setLevel(logging.WARNING)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", required=True, type=Path, help="PNG path")
    parser.add_argument("--metrics", default="loss,ot_loss,bleu", help="comma-separated metric names")
    args = parser.parse_args(argv)
    figure, notes = plot_training_curves(args.run_dirs, args.metrics.split(","))
    for note in notes:
        print(note, file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
