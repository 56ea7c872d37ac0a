"""Checkpoint surgery: continue a fairseq checkpoint under another criterion,
and extract the generator of a mediator-task checkpoint. Both read the file
weights-only and write the result atomically (nothing half-written is left
behind), never over their input, and over another file only when told to."""

import os

import torch
from fairseq.criterions import CRITERION_REGISTRY

from fairseq_ot.criterions.mediator_objective import MediatorObjective
from fairseq_ot.evaluation.files import atomic_file
from fairseq_ot.models.generator_mediator import GENERATOR, mediator_tasks, network_state


class CheckpointError(ValueError):
    """A checkpoint that cannot serve the requested operation; one line."""


def require_paths(source, destination, force):
    """Refuse a `source` that is no file, and a `destination` that is the
    source (even with `force`: the rewritten checkpoint would be the training's
    only copy, what it drops lost) or, unless `force`, any file."""
    if not os.path.isfile(source):
        raise CheckpointError(f"{source}: no such file")
    if os.path.exists(destination) and os.path.samefile(source, destination):
        raise CheckpointError(f"{destination} is the source checkpoint: write to another file")
    if os.path.lexists(destination) and not force:
        raise CheckpointError(f"{destination} exists: pass --force to replace it")


def require_no_mediator(source, state, criterion):
    """Refuse a switch to or from a criterion that trains a mediator: the
    mediator tasks' model holds a second network, so the optimizer state of
    one model cannot continue as the other's (fairseq-train fails on the
    optimizer's parameter groups, or on loading the model)."""
    task = ((state.get("cfg") or {}).get("task") or {}).get("_name")
    if task in mediator_tasks():
        raise CheckpointError(f"{source} was trained with a mediator (task {task}), which its optimizer "
                              "state covers too: extract its generator (scripts/extract_generator.py) "
                              f"and start {criterion} from it with fairseq-train --finetune-from-model")
    if issubclass(CRITERION_REGISTRY[criterion], MediatorObjective):
        raise CheckpointError(f"{criterion} trains a mediator, which the optimizer state of {source} does "
                              "not cover: start it from the model with fairseq-train --task mediator_* "
                              f"--finetune-from-model {source} --mediator-init ...")


def switch_criterion(source, destination, criterion, force=False):
    """Write `source` to `destination` so that fairseq-train resumes it under
    `criterion` with its optimizer state, learning-rate schedule and update
    count. fairseq refuses to resume under another criterion unless
    --reset-optimizer, which also drops Adam's moments and restarts the
    update count, and with it the warm-up. The best validation score is
    forgotten when the criterion changes (it was measured on the old
    criterion's scale). Neither criterion may train a mediator; `force`:
    replace an existing `destination`. Returns (the previous criterion's
    class name, the update count)."""
    if criterion not in CRITERION_REGISTRY:
        raise CheckpointError(f"unknown criterion {criterion!r}; registered: {', '.join(sorted(CRITERION_REGISTRY))}")
    require_paths(source, destination, force)
    state = torch.load(source, map_location="cpu", weights_only=True)
    require_no_mediator(source, state, criterion)
    history = state.get("optimizer_history") or []
    if not history or state.get("last_optimizer_state") is None:
        raise CheckpointError(f"{source} holds no optimizer state to continue from")
    if state.get("criterion"):
        raise CheckpointError(f"{source} was trained with a criterion that has parameters; its "
                              "optimizer state does not match the model alone")
    previous = history[-1]["criterion_name"]
    history[-1]["criterion_name"] = CRITERION_REGISTRY[criterion].__name__
    if history[-1]["criterion_name"] != previous:
        # the best validation score so far is on the old criterion's scale: kept, it
        # would decide which new checkpoint becomes checkpoint_best.pt
        (state.get("extra_state") or {}).pop("best", None)
    with atomic_file(destination, "wb") as out:
        torch.save(state, out)
    return previous, history[-1]["num_updates"]


def extract_generator(source, destination, force=False):
    """Write the generator of a mediator-task checkpoint (cot, gjs) as a plain
    fairseq checkpoint of the task the mediator task extends (translation,
    language_modeling, captioning), for tools that know nothing of the
    mediator task; `force`: replace an existing `destination`. Returns the
    plain task's name."""
    require_paths(source, destination, force)
    state = torch.load(source, map_location="cpu", weights_only=True)
    task_cfg = state["cfg"]["task"]
    plain_tasks = mediator_tasks()
    if task_cfg.get("_name") not in plain_tasks:
        raise CheckpointError(f"{source} is not a mediator-task checkpoint (task "
                              f"{task_cfg.get('_name')!r}; mediator tasks: {', '.join(plain_tasks)})")
    task_cfg["_name"] = plain_tasks[task_cfg["_name"]]
    for key in [key for key in task_cfg if key.startswith("mediator_")]:
        del task_cfg[key]
    state["model"] = network_state(state["model"], GENERATOR)
    # the optimizer state covers both networks: it cannot resume the generator alone
    state["last_optimizer_state"] = None
    state["criterion"] = None
    with atomic_file(destination, "wb") as out:
        torch.save(state, out)
    return task_cfg["_name"]
