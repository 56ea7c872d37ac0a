"""Checkpoints that know the vocabulary they were trained with.

What it patches: `FairseqTask.state_dict` and `FairseqTask.load_state_dict`,
`Dictionary.add_from_file`, `checkpoint_utils.load_checkpoint_to_cpu`, which
remembers the file of the task state it read last (fairseq hands the task
its state alone), and `Trainer.load_checkpoint`, which checks what
`checkpoint_utils.load_checkpoint_to_cpu` reads and, with several processes,
what `distributed.utils.broadcast_object` hands on while it runs (fairseq 0.12.x).

Why: fairseq checkpoints store no dictionary. A checkpoint used with the
data-bin of another corpus whose dictionary has the same size loads without
complaint: fairseq-generate exits 0 with garbage, a resume or
--finetune-from-model trains on silently. Every checkpoint now records, in its
task state (which fairseq saves and hands back to the task when it loads a
model for generation), the symbols of the task's source and target
dictionaries and the files they were read from. Loading for generation, and
every checkpoint the trainer reads (checkpoint_last.pt, --restore-file,
--finetune-from-model, and a --mediator-init checkpoint, which the mediator
task's model reads while the trainer loads), compares them with the data's
dictionaries and refuses a mismatch in one line naming the checkpoint file,
both dictionary files and the first symbol that differs, or the sizes. A
checkpoint without the record (stock fairseq, fairseq-ot before it) loads
with a warning.

No longer needed when: fairseq checkpoints record their dictionaries and are
checked against the task's when loaded (not in 0.12.x)."""

import functools
import logging
import os

from fairseq import checkpoint_utils
from fairseq.data import Dictionary
from fairseq.distributed import utils as distributed_utils
from fairseq.tasks import FairseqTask
from fairseq.trainer import Trainer

from fairseq_ot.errors import FlagError

logger = logging.getLogger(__name__)

# the record's key in the task state: stock fairseq merges it into a task's
# state and otherwise ignores it
KEY = "fairseq_ot_vocabulary"
ROLES = ("source", "target")


class _LastRead:
    """The task state of the checkpoint file read last, and that file."""
    task_state = None
    path = None


def install() -> None:
    """Record the dictionaries' files and the vocabulary; check it on loading.
    Idempotent."""
    _patch(Dictionary, "add_from_file", _recording_file)
    _patch(FairseqTask, "state_dict", _recording_vocabulary)
    _patch(FairseqTask, "load_state_dict", _checking_vocabulary)
    _patch(checkpoint_utils, "load_checkpoint_to_cpu", _remembering_file)
    _patch(Trainer, "load_checkpoint", _checking_every_checkpoint_read)


def _patch(owner, name, wrap):
    method = getattr(owner, name)
    if getattr(method, "_fairseq_ot_vocabulary", False):
        return
    patched = functools.wraps(method)(wrap(method))
    patched._fairseq_ot_vocabulary = True
    setattr(owner, name, patched)


def _recording_file(add_from_file):
    def add_and_record(dictionary, f):
        add_from_file(dictionary, f)
        # a path (fairseq reads the file it opens in a nested call, which records nothing)
        if isinstance(f, str):
            dictionary.fairseq_ot_file = os.path.abspath(f) if os.path.isfile(f) else f

    return add_and_record


def _recording_vocabulary(state_dict):
    def with_vocabulary(task):
        return {**state_dict(task), KEY: vocabulary(task)}

    return with_vocabulary


def _remembering_file(load_checkpoint_to_cpu):
    def read_and_remember(path, *args, **kwargs):
        state = load_checkpoint_to_cpu(path, *args, **kwargs)
        _LastRead.task_state, _LastRead.path = state.get("task_state"), path
        return state

    return read_and_remember


def _checking_vocabulary(load_state_dict):
    def check_then_load(task, state):
        require_same_vocabulary(state, task, _file_read(state))
        # the task records its own vocabulary when saved: the checkpoint's is not its state
        load_state_dict(task, {key: value for key, value in state.items() if key != KEY})

    return check_then_load


def _checking_every_checkpoint_read(load_checkpoint):
    def load_checked(trainer, filename, *args, **kwargs):
        def checked(state, path):
            require_same_vocabulary(state.get("task_state") or {}, trainer.task, path)
            return state

        read = checkpoint_utils.load_checkpoint_to_cpu
        broadcast = distributed_utils.broadcast_object

        def read_checked(path, *read_args, **read_kwargs):
            state = read(path, *read_args, **read_kwargs)
            # rank 0 hands the trainer's checkpoint on to the other ranks: it is
            # checked once all hold it, as a refusal on rank 0 alone would leave
            # them waiting for it (and gloo's traceback under the one line)
            handed_on = (path == filename and trainer.data_parallel_world_size > 1
                         and not read_kwargs.get("load_on_all_ranks"))
            return state if handed_on else checked(state, path)

        def broadcast_checked(state, *broadcast_args, **broadcast_kwargs):
            state = broadcast(state, *broadcast_args, **broadcast_kwargs)
            # the checkpoint, not the optimizer state a sharded optimizer hands on
            return checked(state, filename) if "optimizer_history" in state else state

        # the trainer, and the mediator task's warm start while the trainer
        # loads (--mediator-init), read checkpoints through these modules
        checkpoint_utils.load_checkpoint_to_cpu = read_checked
        distributed_utils.broadcast_object = broadcast_checked
        try:
            return load_checkpoint(trainer, filename, *args, **kwargs)
        finally:
            checkpoint_utils.load_checkpoint_to_cpu = read
            distributed_utils.broadcast_object = broadcast

    return load_checked


def _file_read(task_state):
    """The checkpoint file `task_state` was read from, as a refusal names it:
    the one read last when it holds this very state (fairseq's
    load_model_ensemble_and_task reads each file, then hands its task state
    to the task)."""
    if task_state is _LastRead.task_state:
        return _LastRead.path
    return "a checkpoint whose file is not known"


def vocabulary(task):
    """{role: {"file": path or None, "symbols": [...]}} of the task's source
    and target dictionaries, those it has. The symbols themselves, not a hash:
    a refusal names the first that differs (40k short strings weigh far less
    than the embeddings they index)."""
    found = {}
    for role in ROLES:
        dictionary = getattr(task, f"{role}_dictionary")
        if dictionary is not None:
            found[role] = {"file": getattr(dictionary, "fairseq_ot_file", None),
                           "symbols": list(dictionary.symbols)}
    return found


def require_same_vocabulary(task_state, task, checkpoint):
    """Refuse the checkpoint (named `checkpoint` in the message) whose
    recorded vocabulary differs from the task's dictionaries; warn when it
    records none."""
    data = vocabulary(task)
    recorded = task_state.get(KEY)
    if recorded is None:
        if data:
            files = ", ".join(_file(entry) for entry in data.values())
            logger.warning(f"{checkpoint} records no vocabulary (stock fairseq or an older "
                           f"fairseq-ot wrote it): not checked against the data's {files}")
        return
    for role, ours in data.items():
        theirs = recorded.get(role)
        if theirs is not None and theirs["symbols"] != ours["symbols"]:
            raise FlagError(f"{checkpoint} was trained with another {role} dictionary: "
                            f"{_difference(theirs, ours)}")


def _difference(theirs, ours):
    """The first symbol that differs and, if they do, the sizes."""
    old, new = theirs["symbols"], ours["symbols"]
    parts = []
    index = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), None)
    if index is not None:
        parts.append(f"symbol {index} is {old[index]!r} in {_file(theirs)} (the checkpoint's), "
                     f"{new[index]!r} in {_file(ours)} (the data's)")
    if len(old) != len(new):
        parts.append(f"{len(old)} symbols in {_file(theirs)} (the checkpoint's), "
                     f"{len(new)} in {_file(ours)} (the data's)")
    return "; ".join(parts)


def _file(entry):
    return entry["file"] or "a dictionary not read from a file"
