"""Recipes: fairseq-train flags kept in plain files, so that the run scripts,
the cluster launchers and the hydra configs all start from one definition.

A recipe is a folder ``NAME/`` beside this file (shipped with the package) holding

- ``train.args``: the flags every criterion shares (model, optimizer, batching);
- ``criterion_CRITERION.args``: the flags of one criterion on this recipe
  (``--criterion`` itself, its options, a different ``--task`` for ``cot``).
  A second setting of a criterion is a variant ``criterion_CRITERION_VARIANT.args``
  (``criterion_gjs_mediator_pi025.args`` holds ``--criterion gjs``): wherever
  a recipe's criterion is named (here, the run scripts, the hydra YAMLs) the
  name is the file's, CRITERION or CRITERION_VARIANT; ``registered_criterion``
  gives the fairseq criterion it trains.

Each line holds shell words; ``#`` starts a comment. A criterion has a recipe
only where its file exists, so an untried combination fails loudly.

    python -m fairseq_ot.recipes NAME CRITERION          # the flags, shell-quoted
    python -m fairseq_ot.recipes NAME CRITERION --task   # the task alone, which
        # fairseq-generate must be given for a mediator task's checkpoint
"""

import argparse
import os
import shlex
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent


# torch threads per training process: on 2 cores, with any other job running,
# the quickstart took 273 s with torch's default and 59 s with one thread
DEFAULT_THREADS = 1


def add_threads_argument(parser):
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch threads (OMP_NUM_THREADS) of the fairseq processes "
                             f"(default {DEFAULT_THREADS}, measured fastest on a shared 2-core machine)")


def environment_with_threads(threads):
    """os.environ with OMP_NUM_THREADS, which torch reads for its thread pool."""
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def read_args_file(path):
    """The shell words of an args file, comments dropped."""
    words = []
    for line in Path(path).read_text().splitlines():
        words.extend(shlex.split(line, comments=True))
    return words


def recipe_criterions(name):
    """Criterions that have flags in recipe ``name``."""
    folder = RECIPES_DIR / name
    return sorted(p.name[len("criterion_"):-len(".args")] for p in folder.glob("criterion_*.args"))


def all_recipe_criterions():
    """(recipe, criterion) of every flag file of every recipe."""
    return [(folder.name, criterion) for folder in sorted(RECIPES_DIR.glob("*"))
            if (folder / "train.args").is_file() for criterion in recipe_criterions(folder.name)]


def recipe_args(name, criterion):
    """fairseq-train flags (without DATA) of recipe ``name`` with ``criterion``."""
    folder = RECIPES_DIR / name
    if not (folder / "train.args").is_file():
        known = sorted(p.parent.name for p in RECIPES_DIR.glob("*/train.args"))
        raise ValueError(f"no recipe {name!r} in {RECIPES_DIR} (recipes: {', '.join(known)})")
    criterion_file = folder / f"criterion_{criterion}.args"
    if not criterion_file.is_file():
        raise ValueError(
            f"recipe {name!r} has no flags for criterion {criterion!r} "
            f"(it has: {', '.join(recipe_criterions(name))})"
        )
    return read_args_file(folder / "train.args") + read_args_file(criterion_file)


def registered_criterion(name, criterion):
    """The fairseq criterion (``--criterion``) that recipe ``name`` trains
    under the name ``criterion``: the name itself or, for a variant, its
    first part; ValueError when the file's ``--criterion`` is neither."""
    args = recipe_args(name, criterion)
    registered = [args[i + 1] for i, word in enumerate(args[:-1]) if word == "--criterion"]
    if not registered or not (criterion == registered[-1] or criterion.startswith(registered[-1] + "_")):
        raise ValueError(f"{RECIPES_DIR / name}/criterion_{criterion}.args: --criterion must be "
                         f"{criterion!r} or the start of it followed by _VARIANT, got {registered}")
    return registered[-1]


def recipe_task(name, criterion):
    """The --task that recipe ``name`` trains ``criterion`` with."""
    args = recipe_args(name, criterion)
    tasks = [args[i + 1] for i, word in enumerate(args[:-1]) if word == "--task"]
    return tasks[-1] if tasks else "translation"


def main():
    parser = argparse.ArgumentParser(description="Print a recipe's fairseq-train flags.")
    parser.add_argument("recipe")
    parser.add_argument("criterion")
    parser.add_argument("--task", action="store_true", help="print the task alone")
    args = parser.parse_args()
    try:
        if args.task:
            print(recipe_task(args.recipe, args.criterion))
        else:
            print(shlex.join(recipe_args(args.recipe, args.criterion)))
    except ValueError as error:
        raise SystemExit(f"error: {error}")


if __name__ == "__main__":
    main()
