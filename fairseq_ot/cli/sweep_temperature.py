"""The quality-diversity trade-off of unconditional language models over the
softmax temperature (Caccia et al., ICLR 2020, "Language GANs Falling
Short"): for each run (one method) and each temperature T, sample --num
sentences (fairseq_ot/evaluation/lm_sampling.py), score BLEU-5 against the
test sentences and Self-BLEU-5 among the samples
(fairseq_ot/evaluation/generation_metrics.py), and record the method's
NLL_test (nats per token of the test sentences, teacher-forced, EOS
counted, padding never).

    python scripts/sweep_temperature.py RUNS/mle RUNS/cot ... --data DATA_BIN \\
        --out sweep.png [--temperatures 0.6 0.7 0.8 0.9 1.0 1.1 1.2 1.4] \\
        [--num 1000] [--seed 1] [--checkpoint checkpoint_last.pt]

A run is a folder with checkpoints/CHECKPOINT (the method is its name);
DATA_BIN the prepared folder (dict.txt, test.{bin,idx} and test.txt, the
references; valid.txt for the real-data point). Writes the plot (--out:
left, BLEU-5 up against Self-BLEU-5 across, one curve per method through its
temperatures, better to the upper left, with the real-data point: --num
validation sentences scored as the samples are; right, NLL_test per method),
the table (--json, default OUT with .json), the paper's Tables 2-3 in form
at T = 1 when 1 is among the temperatures (OUT with .md: BLEU-2..5,
Self-BLEU-2..5, NLL_test and training seconds, fairseq's train_wall summed
over the epochs of RUN_DIR/train.log) and the samples
(OUT_samples/METHOD_tT.txt).
"""

import argparse
import json
import logging
from pathlib import Path

from fairseq_ot.data_prep.text_files import TextFileError
from fairseq_ot.errors import FlagError, print_one_line
from fairseq_ot.evaluation.files import UnreadableFileError, write_atomically
from fairseq_ot.evaluation.generation_metrics import UndefinedScoreError
from fairseq_ot.evaluation.lm_sampling import LMInputError
from fairseq_ot.evaluation.temperature_sweep import DEFAULT_TEMPERATURES, check_args, plot_sweep, sweep, table_at

# importing fairseq (the plugin's cli package does) sets the root logger to
# DEBUG; matplotlib would then log every font lookup
logging.getLogger().setLevel(logging.WARNING)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run folders, one per method, each with checkpoints/CHECKPOINT")
    parser.add_argument("--data", type=Path, required=True, help="prepared caption_lm folder (DATA_BIN)")
    parser.add_argument("--out", type=Path, required=True, help="the plot (PNG)")
    parser.add_argument("--json", type=Path, help="the table (default: --out with .json)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=list(DEFAULT_TEMPERATURES),
                        help=f"softmax temperatures (default {' '.join(map(str, DEFAULT_TEMPERATURES))})")
    parser.add_argument("--num", type=int, default=1000, help="sentences sampled per point (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="sampling seed, the same at every point (default 1)")
    parser.add_argument("--checkpoint", default="checkpoint_last.pt",
                        help="checkpoint file of each run (default checkpoint_last.pt: every method "
                             "after the recipe's same number of updates)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        points = sweep(args)
    except (FlagError, LMInputError, FileNotFoundError, TextFileError, UnreadableFileError,
            UndefinedScoreError) as error:
        print_one_line(error)
        raise SystemExit(2) from None
    json_path = args.json or args.out.with_suffix(".json")
    write_atomically(json_path, json.dumps({"points": points}, indent=2) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_sweep(points, args.out)
    print(f"wrote {json_path} and {args.out}")
    if 1.0 in args.temperatures:
        table = table_at(points, 1.0)
        write_atomically(args.out.with_suffix(".md"), table)
        print(table)


if __name__ == "__main__":
    main()
