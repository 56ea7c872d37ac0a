"""One criterion of a text recipe trained, its test split generated and scored,
all into one run folder (`fairseq-ot-run-text-recipe`,
fairseq_ot/cli/run_text_recipe.py, whose docstring lists the folder's files):
fairseq-train and fairseq-generate run as subprocesses of this interpreter,
sacrebleu (translation) or ROUGE F1 (summarization) scores the output."""

import shlex
import subprocess
import sys

from fairseq_ot.evaluation.files import write_atomically
from fairseq_ot.evaluation.scores import write_scores
from fairseq_ot.evaluation.text_scoring import score
from fairseq_ot.paths import USER_DIR
from fairseq_ot.recipes import RECIPES_DIR, read_args_file, recipe_args, recipe_task

# recipe -> the task its scores are of (a student recipe is a translation's)
TASK_OF_RECIPE = {"translation": "translation", "translation_student": "translation",
                  "summarization": "summarization"}
METRIC = {"translation": "bleu", "summarization": "rouge"}


class RecipeRunError(RuntimeError):
    """A step of the run failed; the message is one line."""


def run(command, env, capture=False):
    """Run `command` (printed to stderr first); its stdout when `capture`."""
    print("+ " + shlex.join(command), file=sys.stderr, flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE if capture else None, text=True, env=env)
    if result.returncode != 0:
        raise RecipeRunError(f"{command[2]} failed with exit status {result.returncode}")
    return result.stdout


def run_text_recipe(recipe, prepared_dir, run_dir, criterion, *, split="test", device="cpu",
                    skip_train=False, extra=(), env=None, command=""):
    """Train `criterion` of `recipe` on PREPARED_DIR/data-bin into RUN_DIR
    (resuming from its checkpoint_last.pt; not at all with `skip_train`),
    with the fairseq-train flags `extra` after the recipe's; generate `split`
    with checkpoint_best.pt and score it; the scores' record, naming
    `command`, goes to RUN_DIR/scores_SPLIT.json. Returns (metrics,
    hypothesis count, the record's path); RecipeRunError when a step fails."""
    device_flags = ["--cpu"] if device == "cpu" else []
    user_dir = ["--user-dir", str(USER_DIR)]
    data_bin = str(prepared_dir / "data-bin")
    checkpoints = run_dir / "checkpoints"
    run_dir.mkdir(parents=True, exist_ok=True)

    if not skip_train:
        run([sys.executable, "-m", "fairseq_cli.train", data_bin, *user_dir, *device_flags,
             *recipe_args(recipe, criterion), *extra,
             "--save-dir", str(checkpoints), "--no-epoch-checkpoints",
             "--log-format", "json", "--log-file", str(run_dir / "train.log")], env)

    generated = run([sys.executable, "-m", "fairseq_cli.generate", data_bin, *user_dir, *device_flags,
                     "--task", recipe_task(recipe, criterion),
                     "--path", str(checkpoints / "checkpoint_best.pt"), "--gen-subset", split,
                     *read_args_file(RECIPES_DIR / recipe / "generate.args"),
                     "--post-process", "subword_nmt", "--required-batch-size-multiple", "1",
                     "--batch-size", "64"], env, capture=True)
    output = run_dir / f"generate-{split}.txt"
    write_atomically(output, generated)

    try:
        metrics, count = score(METRIC[TASK_OF_RECIPE[recipe]], output, prepared_dir, split)
    except ValueError as error:
        raise RecipeRunError(str(error)) from None
    path = write_scores(run_dir, split, task=TASK_OF_RECIPE[recipe], recipe=recipe, criterion=criterion,
                        metrics=metrics, hypotheses=count, command=command)
    return metrics, count, path
