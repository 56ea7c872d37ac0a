"""Compare CPU memory allocators on the criterion benchmark.

Runs `bench_criterions` (MLE against the given criteria, one thread) in a
fresh process per allocator, the allocators taking turns for --repeats
rounds, and prints per allocator the median ms per step of MLE and of each
criterion, their ratio, the process's minor page faults and peak RSS, and
whether every criterion's last loss is bit-identical to the one under
glibc's defaults (an allocator must not change results):

* glibc: glibc's defaults (FAIRSEQ_OT_MALLOC=glibc)
* plugin: what importing fairseq_ot sets (fairseq_ot/compat/glibc_malloc.py)
* env: the MALLOC_*_ variables a user can export before any process starts
* jemalloc, tcmalloc: Debian's libjemalloc2 / libtcmalloc-minimal4 by
  LD_PRELOAD, skipped when not installed

    OMP_NUM_THREADS=1 python scripts/bench_allocators.py [--criteria cot] [--json OUT]
"""

import argparse
from pathlib import Path

from fairseq_ot.benchmarks.allocators import ALLOCATORS, compare_allocators


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--allocators", nargs="+", choices=list(ALLOCATORS), default=list(ALLOCATORS))
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the allocators")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results here")
    args, bench_args = parser.parse_known_args()
    return args, bench_args


def main():
    args, bench_args = parse_args()
    compare_allocators(args.allocators, args.repeats, bench_args, args.json)


if __name__ == "__main__":
    main()
