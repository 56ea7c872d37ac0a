"""How far training moved a model between saved checkpoints: the norm of the
change of its parameters, from one checkpoint to the next and from the first.

Saved every update (``--save-interval-updates 1``), the step from one
checkpoint to the next is the optimizer's update, whatever the criterion: a
fresh Adam moves every parameter whose gradient is not zero by about the
learning rate in its first update, lr * g / (|g| + eps / sqrt(1 - beta2)),
however small and noisy g is, so its root mean square is close to the
learning rate there.
"""

import math
import os

import torch

from fairseq_ot.checkpoints.loading import explained
from fairseq_ot.checkpoints.surgery import CheckpointError
from fairseq_ot.models.generator_mediator import GENERATOR, mediator_tasks, network_state


def trained_parameters(path):
    """(update count, {name: float64 tensor}) of the checkpoint at `path`: its
    model's floating-point tensors, the generator's alone for a mediator-task
    checkpoint (cot, gjs). A tensor saved under several names (tied
    embeddings) is kept once, under its first name."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(str(explained(path, error) or f"cannot load {path}: {error}")) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a fairseq checkpoint (no 'model')")
    model = state["model"]
    task = ((state.get("cfg") or {}).get("task") or {}).get("_name")
    if task in mediator_tasks():
        model = network_state(model, GENERATOR)
    seen, parameters = set(), {}
    for name, tensor in model.items():
        if not torch.is_floating_point(tensor):
            continue
        storage = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if storage not in seen:
            seen.add(storage)
            parameters[name] = tensor.double()
    history = state.get("optimizer_history") or [{}]
    return history[-1].get("num_updates"), parameters


def change_norm(before, after, source, destination):
    """||after - before||_2 over every parameter, with the parameter count;
    checkpoints of different models are refused in one line."""
    if before.keys() != after.keys():
        differing = sorted(before.keys() ^ after.keys())[0]
        raise CheckpointError(f"{source} and {destination} hold different models ({differing} is in one only)")
    squares, count = 0.0, 0
    for name, tensor in before.items():
        if tensor.shape != after[name].shape:
            raise CheckpointError(f"{source} and {destination} hold different models ({name} has shape "
                                  f"{list(tensor.shape)} in one, {list(after[name].shape)} in the other)")
        squares += float(((after[name] - tensor) ** 2).sum())
        count += tensor.numel()
    return math.sqrt(squares), count


def parameter_drift(paths):
    """One row per checkpoint of `paths`, in their order (a warm start's
    checkpoints count their updates afresh, so no count can order them):
    `updates`,
    `step` (the L2 norm of the change since the previous checkpoint, None for
    the first), `step_rms` (step / sqrt(parameters)), `updates_between`,
    `total` (the norm of the change since the first checkpoint) and
    `relative_total` (total / ||first checkpoint's parameters||)."""
    loaded = [(*trained_parameters(path), str(path)) for path in paths]
    _, first, first_path = loaded[0]
    first_norm = math.sqrt(sum(float((tensor ** 2).sum()) for tensor in first.values()))
    rows, previous = [], None
    for updates, parameters, path in loaded:
        total, count = change_norm(first, parameters, first_path, path)
        row = {"checkpoint": path, "updates": updates, "parameters": count, "step": None, "step_rms": None,
               "updates_between": None, "total": total,
               "relative_total": total / first_norm if first_norm else None}
        if previous is not None:
            step, _ = change_norm(previous[1], parameters, previous[2], path)
            between = None if updates is None or previous[0] is None else updates - previous[0]
            row.update(step=step, step_rms=step / math.sqrt(count), updates_between=between)
        rows.append(row)
        previous = (updates, parameters, path)
    return rows
