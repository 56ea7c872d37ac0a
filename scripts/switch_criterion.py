#!/usr/bin/env python
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
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fairseq_ot  # noqa: E402,F401  (registers the criteria; allow-lists fairseq's checkpoint classes)
from fairseq.criterions import CRITERION_REGISTRY  # noqa: E402

from fairseq_ot.evaluation.files import atomic_file  # noqa: E402


def switch_criterion(source, destination, criterion):
    if criterion not in CRITERION_REGISTRY:
        sys.exit(f"error: unknown criterion {criterion!r}; registered: {', '.join(sorted(CRITERION_REGISTRY))}")
    state = torch.load(source, map_location="cpu", weights_only=True)
    history = state.get("optimizer_history") or []
    if not history or state.get("last_optimizer_state") is None:
        sys.exit(f"error: {source} holds no optimizer state to continue from")
    if state.get("criterion"):
        sys.exit(f"error: {source} was trained with a criterion that has parameters; its optimizer "
                 "state does not match the model alone")
    previous = history[-1]["criterion_name"]
    history[-1]["criterion_name"] = CRITERION_REGISTRY[criterion].__name__
    if history[-1]["criterion_name"] != previous:
        # the best validation score so far is on the old criterion's scale: kept, it
        # would decide which new checkpoint becomes checkpoint_best.pt
        (state.get("extra_state") or {}).pop("best", None)
    with atomic_file(destination, "wb") as out:
        torch.save(state, out)
    return previous, history[-1]["num_updates"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="checkpoint written by fairseq-train")
    parser.add_argument("destination", help="where to write the checkpoint to resume from")
    parser.add_argument("criterion", help="registered name of the criterion to continue with")
    args = parser.parse_args(argv)
    previous, updates = switch_criterion(args.source, args.destination, args.criterion)
    print(f"wrote {args.destination}: {previous} at update {updates}, continues as {args.criterion}")


if __name__ == "__main__":
    main()
