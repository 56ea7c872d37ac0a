"""Let a training checkpoint continue under another criterion with its
optimizer state, learning-rate schedule and update count, e.g. ot_seq or gjs
after MLE:

    python scripts/switch_criterion.py mle/checkpoint_last.pt run/checkpoints/checkpoint_last.pt gjs
    fairseq-train DATA --user-dir fairseq_ot --save-dir run/checkpoints --criterion gjs ...

fairseq refuses to resume under another criterion unless --reset-optimizer,
which also drops Adam's moments and restarts the update count, and with it the
warm-up. The best validation score is forgotten when the criterion changes
(it was measured on the old criterion's scale). Neither criterion may train
a mediator, which the other's optimizer state does not cover: cot is refused
here, and a mediator-task checkpoint as the source; gjs continues in its token
mode (fairseq itself refuses its class under --gjs-mode mediator). A mediator
run starts from a plain model with fairseq-train --finetune-from-model. The
destination is never the source; an existing file is replaced only with
--force.
"""

import argparse

from fairseq_ot.checkpoints.surgery import CheckpointError, switch_criterion
from fairseq_ot.errors import print_one_line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="checkpoint written by fairseq-train")
    parser.add_argument("destination", help="where to write the checkpoint to resume from")
    parser.add_argument("criterion", help="registered name of the criterion to continue with")
    parser.add_argument("--force", action="store_true", help="replace the destination if it exists")
    args = parser.parse_args(argv)
    try:
        previous, updates = switch_criterion(args.source, args.destination, args.criterion, args.force)
    except CheckpointError as error:
        print_one_line(error)
        raise SystemExit(2) from None
    print(f"wrote {args.destination}: {previous} at update {updates}, continues as {args.criterion}")
