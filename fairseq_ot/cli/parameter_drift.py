"""How far training moved a model between its saved checkpoints: for each
checkpoint, in the order given, the L2 norm of the parameters' change since
the previous one (`step`, and its root mean square per parameter) and since
the first (`total`, and relative to the first's norm). A mediator-task
checkpoint (cot, gjs) counts its generator alone; tied embeddings count once.

    python scripts/parameter_drift.py mle/checkpoint_best.pt $(ls -v run/checkpoints/checkpoint_*_*.pt) [--json drift.json]

(`ls -v` orders fairseq's checkpoint_EPOCH_UPDATES.pt by their numbers; a
run warm-started with --finetune-from-model counts its updates from 0, so
its start goes first by hand.) Saved every update (fairseq-train
--save-interval-updates 1), `step` is each update's norm: e.g. cot against
MLE continued from the same model, where a fresh Adam moves each parameter by
about the learning rate in its first update whatever the gradient's size.
"""

import argparse
import json

from fairseq_ot.evaluation.parameter_drift import parameter_drift
from fairseq_ot.checkpoints.surgery import CheckpointError
from fairseq_ot.errors import print_one_line


def format_row(row):
    def number(value, spec):
        return "" if value is None else format(value, spec)

    return (f"| {row['updates']} | {number(row['updates_between'], 'd')} | {number(row['step'], '.6g')} "
            f"| {number(row['step_rms'], '.3g')} | {row['total']:.6g} | {number(row['relative_total'], '.3g')} "
            f"| {row['checkpoint']} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="fairseq checkpoints of one model, the first the reference")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    try:
        rows = parameter_drift(args.checkpoints)
    except CheckpointError as error:
        print_one_line(error)
        raise SystemExit(2) from None
    print(f"{rows[0]['parameters']:,} parameters; step: L2 norm of the change since the previous "
          "checkpoint, total: since the first")
    print("| updates | updates between | step | step rms | total | total / first norm | checkpoint |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(format_row(row))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)
