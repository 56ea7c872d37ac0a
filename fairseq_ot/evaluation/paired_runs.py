"""A scored run against its control on the same test items: the seed a run
folder was trained with, the files its scores were computed from, and the
95% paired bootstrap interval of each metric's difference
(fairseq_ot/evaluation/bootstrap.py), through the scorer of its task.

A run folder holds fairseq-generate's output ``generate-SPLIT.txt`` and
``scores_SPLIT.json`` (fairseq_ot/evaluation/scores.py), whose recorded
command names the folder of the references: the prepared corpus for
translation and summarization (its ``prepared.json``), the prepared caption
data for captioning (its ``SPLIT.images.txt``). Relative paths of that
command are read from the current folder, as when the command ran.
"""

import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from fairseq_ot.data.caption_dataset import images_file, references_file
from fairseq_ot.data_prep.pipeline import STAMP
from fairseq_ot.evaluation import caption_scoring, text_scoring
from fairseq_ot.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED

TEXT_METRIC = {"translation": "bleu", "summarization": "rouge"}
CAPTIONING = "captioning"
SEED_IN_NAME = re.compile(r"seed[_-]?(\d+)")
# the files' whole-test-set score may differ from the recorded one by rounding only
TOLERANCE = 1e-9


class NoIntervalError(Exception):
    """Why two runs get no paired bootstrap interval."""


@dataclass(frozen=True)
class BootstrapSettings:
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    meteor: bool = True  # resample METEOR for captioning, when `java` is there


@dataclass(frozen=True)
class Comparison:
    """A system run against its control, for the metrics both recorded."""

    intervals: dict  # metric -> PairedBootstrap (system minus control)
    missing: dict  # metric -> why it has no interval


def arguments(command):
    """The words of a recorded command line, split as a shell would (on
    whitespace if its quotes do not pair)."""
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def seed_flag(command):
    """The S of the last ``--seed S`` (or ``--seed=S``) of a command line, or None."""
    tokens = arguments(command)
    seed = None
    for flag, value in zip(tokens, tokens[1:] + [""]):
        if flag.startswith("--seed="):
            flag, value = "--seed", flag.partition("=")[2]
        if flag == "--seed" and value.isdigit():
            seed = int(value)
    return seed


def run_seed(name, logged_seed, commands):
    """The seed a run was trained with: ``logged_seed`` (the configuration in
    its train.log), else the last --seed of its recorded scoring
    ``commands`` (run_text_recipe.py records the fairseq-train flags), else
    the N of "seedN" in its ``name``, else None."""
    if logged_seed is not None:
        return logged_seed
    for command in commands:
        seed = seed_flag(command)
        if seed is not None:
            return seed
    named = SEED_IN_NAME.findall(name)
    return int(named[-1]) if named else None


def configuration_name(name):
    """A run's name without its seed ("cot_small_seed2", "cot_small/seed2"
    -> "cot_small"): the runs of one configuration that differ by seed
    share it."""
    stripped = re.sub(r"[_/-]*" + SEED_IN_NAME.pattern, "", name).strip("_/-")
    return stripped or name


def generate_output(run_dir, split):
    return Path(run_dir) / f"generate-{split}.txt"


def holds_references(folder, task, split):
    if task == CAPTIONING:
        return images_file(folder, split).is_file()
    return (folder / STAMP).is_file()


def found_reference_folder(record):
    """The folder of references that an argument (or ``--flag=value``) of
    the scores record's command names, or None where none is found here."""
    for token in arguments(record["command"]):
        value = token.partition("=")[2] if token.startswith("-") else token
        if value and holds_references(Path(value), record["task"], record["split"]):
            return Path(value)
    return None


def reference_folder(record):
    """found_reference_folder, NoIntervalError where there is none."""
    folder = found_reference_folder(record)
    if folder is not None:
        return folder
    raise NoIntervalError(
        f"no argument of the recorded command `{record['command']}` is a folder with the "
        f"{record['task']} references of {record['split']} here (relative paths are read "
        f"from the current folder)")


def reference_contents(folder, task, split):
    """The bytes of every file of references of ``split`` in ``folder``:
    two folders that hold the same ones score on the same test set (a
    sequence-level KD corpus keeps its original's test split)."""
    if task == CAPTIONING:
        files = [images_file(folder, split), references_file(folder, split)]
    else:
        files = sorted((folder / "references").glob(f"{split}.*"))
    return [path.read_bytes() if path.is_file() else None for path in files]


def different_test_sets(system_record, control_record):
    """Why two scores records were computed on different test sets, or None
    where nothing says so: other numbers of hypotheses (one per test item),
    or other references in the folders named by their commands (both found
    here). A difference of such scores compares nothing."""
    counts = system_record["hypotheses"], control_record["hypotheses"]
    if counts[0] != counts[1]:
        return f"the runs were scored on different test sets, of {counts[0]} and {counts[1]} items"
    folders = found_reference_folder(system_record), found_reference_folder(control_record)
    if None in folders or folders[0].resolve() == folders[1].resolve():
        return None
    task, split = system_record["task"], system_record["split"]
    if reference_contents(folders[0], task, split) != reference_contents(folders[1], task, split):
        return f"the runs were scored on different test sets, the references of {folders[0]} and {folders[1]}"
    return None


def task_bootstraps(task, outputs, folder, split, settings):
    """{metric: PairedBootstrap} from the task's scorer."""
    if task == CAPTIONING:
        return caption_scoring.paired_bootstraps(
            *outputs, folder, split, meteor=settings.meteor and caption_scoring.java_available(),
            n_resamples=settings.n_resamples, seed=settings.seed)
    return text_scoring.paired_bootstraps(TEXT_METRIC[task], *outputs, folder, split,
                                          n_resamples=settings.n_resamples, seed=settings.seed)


def unresampled(name, task, settings):
    """Why a recorded metric got no interval from its task's scorer."""
    if task == CAPTIONING and name == "meteor":
        return "--no-meteor was given" if not settings.meteor else caption_scoring.METEOR_SKIPPED
    return f"{task} scoring does not resample {name}"


def disagreement(name, estimate, run_dir, record):
    """Why the whole-test-set score of a run's files is not the recorded
    one, or None when it is."""
    recorded = record["metrics"][name]
    if math.isclose(estimate.score, recorded, rel_tol=TOLERANCE, abs_tol=TOLERANCE):
        return None
    split = record["split"]
    return (f"{generate_output(run_dir, split)} scores {name} {estimate.score:.4f}, "
            f"its scores_{split}.json records {recorded:.4f}")


def compared(intervals, system, control, settings):
    """The Comparison of the metrics both (run folder, record) pairs hold."""
    (system_dir, system_record), (control_dir, control_record) = system, control
    kept, missing = {}, {}
    for name in system_record["metrics"]:
        if name not in control_record["metrics"]:
            continue
        if name not in intervals:
            missing[name] = unresampled(name, system_record["task"], settings)
            continue
        reason = (disagreement(name, intervals[name].system, system_dir, system_record)
                  or disagreement(name, intervals[name].control, control_dir, control_record))
        if reason:
            missing[name] = reason
        else:
            kept[name] = intervals[name]
    return Comparison(intervals=kept, missing=missing)


def paired_comparison(system, control, settings=BootstrapSettings()):
    """The Comparison of ``system`` against ``control``, each a (run folder,
    scores record) pair of the same task and split; NoIntervalError when
    their files are missing, unreadable or scored on other test sets."""
    (system_dir, system_record), (control_dir, control_record) = system, control
    task, split = system_record["task"], system_record["split"]
    if task not in TEXT_METRIC and task != CAPTIONING:
        raise NoIntervalError(f"no paired bootstrap for task {task}")
    difference = different_test_sets(system_record, control_record)
    if difference:
        raise NoIntervalError(difference)
    outputs = [generate_output(system_dir, split), generate_output(control_dir, split)]
    for output in outputs:
        if not output.is_file():
            raise NoIntervalError(f"{output} is missing")
    # both found, so different_test_sets has compared them: the same test set
    folders = [reference_folder(record) for record in (system_record, control_record)]
    try:
        intervals = task_bootstraps(task, outputs, folders[0], split, settings)
    except (OSError, ValueError) as error:  # includes HypothesisCountError and TextFileError
        raise NoIntervalError(str(error)) from error
    return compared(intervals, system, control, settings)
