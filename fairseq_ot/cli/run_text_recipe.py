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
import subprocess
import sys
from pathlib import Path

from fairseq_ot.evaluation.files import write_atomically
from fairseq_ot.evaluation.scores import write_scores
from fairseq_ot.evaluation.text_scoring import score
from fairseq_ot.paths import USER_DIR
from fairseq_ot.recipes import (
    RECIPES_DIR,
    add_threads_argument,
    environment_with_threads,
    read_args_file,
    recipe_args,
    recipe_task,
)

# recipe -> the task its scores are of (a student recipe is a translation's)
TASK_OF_RECIPE = {"translation": "translation", "translation_student": "translation",
                  "summarization": "summarization"}
METRIC = {"translation": "bleu", "summarization": "rouge"}


def run(command, env, capture=False):
    print("+ " + shlex.join(command), file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE if capture else None, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"error: {command[2]} failed with exit status {result.returncode}")
    return result.stdout


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
    device = ["--cpu"] if args.device == "cpu" else []
    user_dir = ["--user-dir", str(USER_DIR)]
    data_bin = str(args.prepared_dir / "data-bin")
    checkpoints = args.run_dir / "checkpoints"
    args.run_dir.mkdir(parents=True, exist_ok=True)

    if not args.skip_train:
        run([sys.executable, "-m", "fairseq_cli.train", data_bin, *user_dir, *device,
             *recipe_args(args.recipe, args.criterion), *extra,
             "--save-dir", str(checkpoints), "--no-epoch-checkpoints",
             "--log-format", "json", "--log-file", str(args.run_dir / "train.log")], env)

    generated = run([sys.executable, "-m", "fairseq_cli.generate", data_bin, *user_dir, *device,
                     "--task", recipe_task(args.recipe, args.criterion),
                     "--path", str(checkpoints / "checkpoint_best.pt"), "--gen-subset", args.split,
                     *read_args_file(RECIPES_DIR / args.recipe / "generate.args"),
                     "--post-process", "subword_nmt", "--required-batch-size-multiple", "1",
                     "--batch-size", "64"], env, capture=True)
    output = args.run_dir / f"generate-{args.split}.txt"
    write_atomically(output, generated)

    try:
        metrics, count = score(METRIC[TASK_OF_RECIPE[args.recipe]], output, args.prepared_dir, args.split)
    except ValueError as error:
        sys.exit(f"error: {error}")
    path = write_scores(args.run_dir, args.split, task=TASK_OF_RECIPE[args.recipe], recipe=args.recipe,
                        criterion=args.criterion, metrics=metrics, hypotheses=count,
                        command=shlex.join([sys.argv[0], *argv]))
    print(" ".join(f"{k}={v:.2f}" for k, v in metrics.items()) + f" ({count} hypotheses) -> {path}")


if __name__ == "__main__":
    main()
