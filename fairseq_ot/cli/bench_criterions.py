#!/usr/bin/env python
"""Benchmark the fairseq_ot criterions against label-smoothed cross-entropy.

Measured, on one in-memory fairseq translation setup (a `transformer` of
3+3 layers, dim 256, ffn 1024, 4 heads, a shared vocabulary of 8000 types;
synthetic batches of 64 sentence pairs of 10..30 tokens, padded):

* ms/step: a full training step (forward, backward, Adam step, zero_grad).
  Every criterion trains its own copy of the same initial weights on the
  same batches; after warm-up the criteria alternate step by step, round
  after round, so that machine noise falls on all of them alike, and each
  reports the median over rounds of its mean step time in a round.
* peak MB: the peak of the memory a step allocates above what was live
  before it (parameters and Adam moments, identical for all criteria drop
  out; activations, gradients and the criterion's temporaries remain).
  Exact on CPU by counting tensor storages (fairseq_ot/benchmarks/memory_meter.py), from
  the allocator on CUDA.
* batched IPOT against a Python loop over sentences, B=64, n=m=30, cosine
  costs in [0, 2], uniform marginals, beta 0.5, 50 iterations, in the
  envelope mode (forward only) and the unrolled mode (forward + backward).

Targets: ot_seq step time <= 1.25x and peak memory <= 1.3x those of
label_smoothed_cross_entropy; scheduled_sampling (two_pass) <= 1.8x, token
gjs <= 1.1x; cot and gjs:mediator (on the mediator_translation task) <= 1.6x
with the task's default mediator (`--mediator default`) and <= 3.5x, peak
memory <= 2.5x, with one as large as the generator (`--mediator equal`);
batched IPOT >= 20x faster than the loop.

Samples: a generator at its initial weights almost never draws EOS, so its
samples run to the length limit. `--sample-length data` (the default) caps
them at the source length, which the synthetic batches draw from the same
range as the target's: the length a trained generator's samples have, the
steady state; `--sample-length limit` keeps the criterion's own limit
(1.2 x source + 10), the start of a run from scratch. The table reports the
mean sample length beside the data's.

The defaults take a few minutes on 2 CPU cores with OMP_NUM_THREADS=1:
about 45 s per criterion row (6 rows with ot_seq's two variants) and 30 s
for IPOT.

    OMP_NUM_THREADS=1 python scripts/bench_criterions.py [--json results.json]
"""

import argparse
import logging
from pathlib import Path

# fairseq and hydra log their setup at INFO and DEBUG; keep the report readable.
logging.disable(logging.INFO)

from fairseq_ot.benchmarks.criterions import (  # noqa: E402  (after the logging switch)
    BASELINE,
    DTYPES,
    MEDIATOR_TARGETS,
    SAMPLE_LENGTH_FLAGS,
    VARIANTS,
    run,
)


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                        help="float16/bfloat16 run the steps under autocast")
    parser.add_argument("--rounds", type=int, default=5,
                        help="passes over the batches, the criteria alternating "
                        "step by step; the median over rounds counts")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed steps per criterion before the measured ones, "
                        "at least 1 so that Adam's moments exist before")
    parser.add_argument("--batches", type=int, default=3,
                        help="synthetic batches; a round times every criterion on each")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--min-len", type=int, default=10, help="shortest sentence, tokens")
    parser.add_argument("--max-len", type=int, default=30, help="longest sentence, tokens")
    parser.add_argument("--vocab", type=int, default=8000, help="dictionary size")
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder layers each")
    parser.add_argument("--dim", type=int, default=256,
                        help="model dim; ffn 4x, one attention head per 64")
    parser.add_argument("--criteria", nargs="+", metavar="LABEL",
                        help=f"subset to run (plugin criteria and {sorted(VARIANTS)}); "
                        f"{BASELINE} is always run, being the reference")
    parser.add_argument("--mediator", choices=sorted(MEDIATOR_TARGETS), default="default",
                        help="the mediator of cot and gjs:mediator: the task's default "
                        "size (embed 64, FFN 64, 1 layer), as large as the generator, or "
                        "as large as the teacher (--teacher-layers/--teacher-dim)")
    parser.add_argument("--data", type=Path, metavar="DATA_BIN",
                        help="batches of a real corpus instead of synthetic ones: the first "
                        "--batches of fairseq's own length-bucketed batches of its train "
                        "split (--max-tokens each, its dictionary)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="with --data: tokens per batch")
    parser.add_argument("--teacher-layers", type=int, default=0,
                        help="a teacher transformer of this many layers each side (and "
                        "--teacher-dim) for the distill rows; 0: no teacher, distill skipped")
    parser.add_argument("--teacher-dim", type=int, default=256, help="the teacher's dim; ffn 4x")
    parser.add_argument("--sample-length", choices=sorted(SAMPLE_LENGTH_FLAGS), default="data",
                        help="samples capped at the source length (a trained generator's "
                        "lengths, where sources and targets are alike, as in the synthetic "
                        "batches), at each row's reference length (a trained generator's, "
                        "on a real corpus: --data) or at the criterion's own limit (an "
                        "untrained one's)")
    parser.add_argument("--ipot-repeats", type=int, default=9,
                        help="timed repeats of each IPOT variant; the median counts "
                        "(0 skips IPOT)")
    parser.add_argument("--top-tensors", type=int, default=0,
                        help="list the N largest groups of storages live at each "
                        "criterion's memory peak (CPU only)")
    parser.add_argument("--sampling", action="store_true",
                        help="only compare ancestral sampling from the generator, lean step "
                        "against fairseq's incremental decoding: aten ops per step and the time "
                        "of --batch-size samples of --max-len tokens, --rounds alternating repeats")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results here")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be at least 1")
    if args.mediator == "teacher" and not args.teacher_layers:
        parser.error("--mediator teacher needs --teacher-layers")
    if args.data is not None and not list(args.data.glob("dict.*.txt")):
        parser.error(f"--data {args.data}: no dict.*.txt there (a fairseq-preprocess folder)")
    return args


def main():
    run(parse_args())


if __name__ == "__main__":
    main()
