"""Train one criterion of a text recipe, generate the test split and score it,
all into one run folder:

    RUN_DIR/train.log              fairseq-train JSON log
    RUN_DIR/checkpoints/           checkpoint_best.pt (lowest valid nll_loss), checkpoint_last.pt
    RUN_DIR/generate-SPLIT.txt     fairseq-generate output
    RUN_DIR/scores_SPLIT.json      sacrebleu (translation) or ROUGE F1 (summarization)

    python scripts/run_text_recipe.py translation PREPARED_DIR RUN_DIR CRITERION [-- extra fairseq-train flags]

PREPARED_DIR comes from scripts/prepare_multi30k.py (recipe translation) or
scripts/prepare_aeslc.py (recipe summarization). Training resumes from
RUN_DIR/checkpoints/checkpoint_last.pt when there is one; --skip-train only
generates and scores.
"""

import argparse
import shlex
import sys
from pathlib import Path

from fairseq_ot.recipes import add_threads_argument, environment_with_threads
from fairseq_ot.recipes.text_run import TASK_OF_RECIPE, RecipeRunError, run_text_recipe


def parse_args(argv):
    """This script's options and the fairseq-train flags after `--`: options
    may come before or after the positional arguments, and a fairseq flag
    that shares a name with one of them (--split, --device) stays fairseq's."""
    own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", choices=sorted(TASK_OF_RECIPE))
    parser.add_argument("prepared_dir", type=Path)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("criterion")
    parser.add_argument("--split", default="test", help="split to generate and score")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--skip-train", action="store_true", help="only generate and score")
    add_threads_argument(parser)
    parser.usage = parser.format_usage().removeprefix("usage: ").rstrip() + " [-- fairseq-train flags]"
    return parser.parse_args(own), extra



def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parse_args(argv)
    try:
        env = environment_with_threads(args.threads)
    except ValueError as error:
        sys.exit(f"error: {error}")
    try:
        metrics, count, path = run_text_recipe(
            args.recipe, args.prepared_dir, args.run_dir, args.criterion, split=args.split, device=args.device,
            skip_train=args.skip_train, extra=extra, env=env, command=shlex.join([sys.argv[0], *argv]))
    except RecipeRunError as error:
        sys.exit(f"error: {error}")
    print(" ".join(f"{k}={v:.2f}" for k, v in metrics.items()) + f" ({count} hypotheses) -> {path}")


if __name__ == "__main__":
    main()
