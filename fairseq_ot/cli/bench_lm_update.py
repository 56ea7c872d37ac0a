"""Time one MLE update of the synthetic Turing test's generator in fairseq
against a plain PyTorch loop over the same model sizes and batches.

The plain loop: nn.Embedding -> one nn.LSTM call -> nn.Linear ->
cross_entropy (summed) / tokens -> backward -> Adam step. Each fairseq
contestant (an --arch with the generator's sizes from
`fairseq_ot.synthetic.flags.GENERATOR_ARGS`) is a whole
`fairseq.trainer.Trainer.train_step` with `label_smoothed_cross_entropy` at
smoothing 0 and the Turing test's training flags, so that everything fairseq
adds (criterion, gradient scaling and norm, metrics) is counted. The batches
are the Turing test's: 64 oracle sequences of 20 words and EOS from
`build_oracle_lm_data`. The contestants alternate, --steps updates each per
round; the ratio is the median over rounds of each round's ratio to the
plain loop, which cancels a machine load that drifts between rounds.

    OMP_NUM_THREADS=1 python scripts/bench_lm_update.py [--archs lstm_lm fused_lstm_lm]
        [--rounds 7] [--steps 10] [--profile] [--json OUT]

--profile prints, for every contestant, the operators and the Python
functions that take the most time over --steps updates (torch.profiler,
cProfile) instead of timing.
"""

import argparse
from pathlib import Path

from fairseq_ot.benchmarks.lm_update import run


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["lstm_lm", "fused_lstm_lm"],
                        help="fairseq architectures, each with the generator's sizes")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="updates per contestant and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates per contestant")
    parser.add_argument("--profile", action="store_true", help="profile instead of timing")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results here")
    return parser.parse_args()


def main():
    run(parse_args())


if __name__ == "__main__":
    main()
