#!/usr/bin/env python
"""Does a trained encoder-decoder read its source? Scores the first examples
of a split twice, each target once with its own source and once with the
next example's, and measures the spread of the encoder's outputs
(fairseq_ot/evaluation/source_dependence.py). A model that ignores its source
has a gap of ~0 bits and generates one output for every input, although its
validation loss still falls (its decoder alone models the targets).
Works on translation / summarization checkpoints (the source is a sentence)
and on captioning ones (the source is an image's features).

    python scripts/source_dependence.py CHECKPOINT DATA_BIN [--split valid] [--examples 256]
"""

import argparse
import sys
from pathlib import Path


from fairseq import checkpoint_utils, utils

from fairseq_ot.paths import USER_DIR
from fairseq_ot.evaluation.source_dependence import measure_source_dependence

# below this gap (bits per target token) the source changes next to nothing
IGNORED_SOURCE_GAP_BITS = 0.05


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("data_bin", type=Path)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--examples", type=int, default=256, help="first N examples of the split")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        sys.exit(f"error: no checkpoint {args.checkpoint}")

    utils.import_user_module(argparse.Namespace(user_dir=str(USER_DIR)))
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(args.checkpoint)], arg_overrides={"data": str(args.data_bin)})
    if not hasattr(models[0], "encoder") or not hasattr(models[0], "decoder"):
        sys.exit(f"error: {args.checkpoint} is not an encoder-decoder model ({type(models[0]).__name__})")
    task.load_dataset(args.split)
    if "source" not in task.dataset(args.split)[0]:
        sys.exit(f"error: the {args.split} split of {args.data_bin} has no source sentences")
    result = measure_source_dependence(models[0], task.dataset(args.split), args.examples, args.batch_size)
    print(f"{args.split}, {result.examples} examples: NLL {result.nll_bits:.3f} bits per target token "
          f"with their own sources, {result.shifted_nll_bits:.3f} with the next example's "
          f"(gap {result.nll_gap_bits:+.3f}); encoder output spread {result.encoder_spread:.4f}")
    if result.nll_gap_bits < IGNORED_SOURCE_GAP_BITS:
        print("the model ignores its source: its outputs hardly depend on the input")
    return result


if __name__ == "__main__":
    main()
