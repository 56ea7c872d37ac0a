"""NLL_oracle against NLL_test over the softmax temperature on the synthetic
oracle (Caccia et al., ICLR 2020, "Language GANs Falling Short"): for each
run (one method) and each temperature T, the oracle's NLL of --samples
sequences drawn from softmax(z / T) (quality) and the tempered model's NLL of
the held-out oracle samples (coverage), both in nats per word over the 20
words (fairseq_ot/synthetic/evaluation.py).

    python scripts/sweep_oracle_temperature.py OUT/runs/mle OUT/runs/cot ... \\
        --data OUT/data/data-bin --out sweep.png [--temperatures 0.7 0.8 ...] \\
        [--samples 10000] [--seed 1234] [--checkpoint checkpoint_last.pt]

OUT is a folder of scripts/synthetic_turing_test.py; a run is a folder with
checkpoints/CHECKPOINT, the method is its name. Writes the plot (--out: one
curve per method through its temperatures, NLL_test across, NLL_oracle up,
better to the lower left), the table (OUT with .md) and every point (--json,
default OUT with .json). Lowering T trades coverage for quality; a method is
ahead only where its curve lies below the others' at the same NLL_test.
"""

import argparse
import json
import logging
from pathlib import Path

import torch

from fairseq_ot.errors import FlagError, print_one_line
from fairseq_ot.evaluation.files import write_atomically
from fairseq_ot.evaluation.lm_sampling import LMInputError
from fairseq_ot.synthetic.temperature_sweep import (
    DEFAULT_TEMPERATURES,
    check_args,
    markdown_table,
    plot_sweep,
    sweep,
)

# importing fairseq (the plugin's cli package does) sets the root logger to
# DEBUG; matplotlib would then log every font lookup
logging.getLogger().setLevel(logging.WARNING)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run folders, one per method, each with checkpoints/CHECKPOINT")
    parser.add_argument("--data", type=Path, required=True,
                        help="the synthetic test's binarized oracle samples (OUT/data/data-bin)")
    parser.add_argument("--out", type=Path, required=True, help="the plot (PNG)")
    parser.add_argument("--json", type=Path, help="every point (default: --out with .json)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=list(DEFAULT_TEMPERATURES),
                        help=f"softmax temperatures (default {' '.join(map(str, DEFAULT_TEMPERATURES))})")
    parser.add_argument("--samples", type=int, default=10000,
                        help="model samples scored by the oracle per point (default 10000)")
    parser.add_argument("--seed", type=int, default=1234, help="sampling seed, the same at every point")
    parser.add_argument("--checkpoint", default="checkpoint_last.pt", help="checkpoint file of each run")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        torch.set_num_threads(1)
        points, reference = sweep(args)
    except (FlagError, LMInputError, FileNotFoundError, ValueError) as error:
        print_one_line(error)
        raise SystemExit(2) from None
    json_path = args.json or args.out.with_suffix(".json")
    write_atomically(json_path, json.dumps({"points": points, "oracle": reference}, indent=2) + "\n")
    plot_sweep(points, reference, args.out)
    table = markdown_table(points, reference, args.temperatures)
    write_atomically(args.out.with_suffix(".md"), table)
    print(table)
    print(f"wrote {json_path}, {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
