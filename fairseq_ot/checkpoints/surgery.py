"""Checkpoint surgery: continue a fairseq checkpoint under another criterion,
and extract the generator of a mediator-task checkpoint. Both read the file
weights-only and write the result atomically (nothing half-written is left
behind)."""

import torch
from fairseq.criterions import CRITERION_REGISTRY

from fairseq_ot.evaluation.files import atomic_file
from fairseq_ot.models.generator_mediator import mediator_tasks


class CheckpointError(ValueError):
    """A checkpoint that cannot serve the requested operation; one line."""


def switch_criterion(source, destination, criterion):
    """Write `source` to `destination` so that fairseq-train resumes it under
    `criterion` with its optimizer state, learning-rate schedule and update
    count. fairseq refuses to resume under another criterion unless
    --reset-optimizer, which also drops Adam's moments and restarts the
    update count, and with it the warm-up. The best validation score is
    forgotten when the criterion changes (it was measured on the old
    criterion's scale). Returns (the previous criterion's class name, the
    update count)."""
    if criterion not in CRITERION_REGISTRY:
        raise CheckpointError(f"unknown criterion {criterion!r}; registered: {', '.join(sorted(CRITERION_REGISTRY))}")
    state = torch.load(source, map_location="cpu", weights_only=True)
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


def extract_generator(source, destination):
    """Write the generator of a mediator-task checkpoint (cot, gjs) as a plain
    fairseq checkpoint of the task the mediator task extends (translation,
    language_modeling, captioning), for tools that know nothing of the
    mediator task. Returns the plain task's name."""
    state = torch.load(source, map_location="cpu", weights_only=True)
    task_cfg = state["cfg"]["task"]
    plain_tasks = mediator_tasks()
    if task_cfg.get("_name") not in plain_tasks:
        raise CheckpointError(f"{source} is not a mediator-task checkpoint (task "
                              f"{task_cfg.get('_name')!r}; mediator tasks: {', '.join(plain_tasks)})")
    task_cfg["_name"] = plain_tasks[task_cfg["_name"]]
    for key in [key for key in task_cfg if key.startswith("mediator_")]:
        del task_cfg[key]
    prefix = "generator."
    state["model"] = {key[len(prefix):]: value for key, value in state["model"].items()
                      if key.startswith(prefix)}
    # the optimizer state covers both networks: it cannot resume the generator alone
    state["last_optimizer_state"] = None
    state["criterion"] = None
    with atomic_file(destination, "wb") as out:
        torch.save(state, out)
    return task_cfg["_name"]
