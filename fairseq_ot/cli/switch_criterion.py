"""Let a training checkpoint continue under another criterion with its
optimizer state, learning-rate schedule and update count, e.g. ot_seq or gjs
after MLE:

    python scripts/switch_criterion.py mle/checkpoint_last.pt run/checkpoints/checkpoint_last.pt gjs
    fairseq-train DATA --user-dir fairseq_ot --save-dir run/checkpoints --criterion gjs ...

fairseq refuses to resume under another criterion unless --reset-optimizer,
which also drops Adam's moments and restarts the update count, and with it the
warm-up. The best validation score is forgotten when the criterion changes
(it was measured on the old criterion's scale). The target criterion must
train nothing beyond the model (not cot, not gjs --gjs-mode mediator): the
optimizer state has to match the model alone.
"""

import argparse
import sys

from fairseq_ot.checkpoints.surgery import CheckpointError, switch_criterion


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="checkpoint written by fairseq-train")
    parser.add_argument("destination", help="where to write the checkpoint to resume from")
    parser.add_argument("criterion", help="registered name of the criterion to continue with")
    args = parser.parse_args(argv)
    try:
        previous, updates = switch_criterion(args.source, args.destination, args.criterion)
    except CheckpointError as error:
        sys.exit(f"error: {error}")
    print(f"wrote {args.destination}: {previous} at update {updates}, continues as {args.criterion}")
