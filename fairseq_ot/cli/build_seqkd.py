#!/usr/bin/env python
"""Sequence-level knowledge distillation data: a copy of a prepared folder
whose training targets are a teacher's beam-search outputs for the training
sources (valid and test, dictionaries, BPE codes and references unchanged).

    python scripts/build_seqkd.py PREPARED TEACHER.pt OUT [--beam 5] [--chunk-size 1000]

Then `scripts/run_text_recipe.py translation OUT RUN_DIR label_smoothed_cross_entropy`
is sequence-level KD. Resumable: the chunks already translated (in
.OUT.chunks/ beside OUT, or --chunks-dir) are kept when the command is run
again. On n cores, start it n times with --shard 0/n ... --shard n-1/n: the
last process to finish writes OUT."""

import argparse
import sys
from pathlib import Path

from fairseq_ot.distillation.sequence_kd import build_sequence_kd
from fairseq_ot.errors import FlagError


def shard_of(text):
    """K/N with 0 <= K < N."""
    index, _, shards = text.partition("/")
    if not (index.isdigit() and shards.isdigit() and int(index) < int(shards)):
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got {text!r}")
    return int(index), int(shards)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", type=Path, help="prepared folder (scripts/prepare_multi30k.py, ...)")
    parser.add_argument("teacher", type=Path, help="fairseq checkpoint of the teacher")
    parser.add_argument("out", type=Path, help="prepared folder to write (must not exist)")
    parser.add_argument("--beam", type=int, default=5, help="beam size")
    parser.add_argument("--lenpen", type=float, default=1.0, help="length penalty")
    parser.add_argument("--max-len-a", type=float, default=1.2, help="outputs at most a * source length + b")
    parser.add_argument("--max-len-b", type=int, default=10, help="see --max-len-a")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per beam-search batch")
    parser.add_argument("--chunk-size", type=int, default=1000, help="sentences per resumable chunk")
    parser.add_argument("--cuda", action="store_true", help="translate on the GPU")
    parser.add_argument("--chunks-dir", type=Path, help="folder of the translated chunks, kept after OUT "
                        "is written (default: .OUT.chunks/ beside OUT, removed then)")
    parser.add_argument("--shard", type=shard_of, default=(0, 1), metavar="K/N",
                        help="translate only the chunks i with i mod N == K (default 0/1: all)")
    args = parser.parse_args(argv)
    for flag in ("beam", "batch_size", "chunk_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    try:
        build_sequence_kd(args.prepared, args.teacher, args.out, beam=args.beam, lenpen=args.lenpen,
                          max_len_a=args.max_len_a, max_len_b=args.max_len_b, batch_size=args.batch_size,
                          chunk_size=args.chunk_size, cuda=args.cuda, chunks_dir=args.chunks_dir,
                          shard=args.shard,
                          say=lambda message: print(message, file=sys.stderr, flush=True))
    except FlagError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")


if __name__ == "__main__":
    main()
