"""A frozen teacher model read from a fairseq checkpoint, for distillation.

The teacher is held outside the module tree of whatever holds it
(`FrozenTeacher` is not an nn.Module): fairseq's trainer casts and moves the
criterion with the model, saves a criterion that has parameters into every
checkpoint and wraps it in DistributedDataParallel with several processes
(which refuses a module without trainable parameters). A teacher registered
as a submodule would be all three: cast before the student's precision is
known, saved into each student checkpoint, and refused by DDP. Instead it is
moved and cast to the student's device and dtype when first used (and again
if they change), kept in eval mode with gradients off, and known to the
student's checkpoint only by its path and SHA-256."""

import hashlib
import os

from fairseq import checkpoint_utils, models
from fairseq.tasks import TASK_REGISTRY

from fairseq_ot.compat.vocabulary_fingerprint import require_same_vocabulary
from fairseq_ot.errors import FlagError
from fairseq_ot.models.generator_mediator import GENERATOR, load_plain_state, mediator_tasks


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def task_kind(name) -> str:
    """The plain task a task's checkpoints are models of: a mediator task's
    (cot, gjs mediator) model is its generator, of the task it extends."""
    return mediator_tasks().get(name, name)


def task_name(task) -> str:
    """The name `task`'s class is registered under. Not `task.cfg._name`:
    fairseq's legacy tasks (language_modeling among them) have no cfg (None;
    their flags are `task.args`), and a task set up from an argparse
    namespace has a config whose _name is None."""
    for name, registered in TASK_REGISTRY.items():
        if type(task) is registered:
            return name
    for config in (getattr(task, "cfg", None), getattr(task, "args", None)):
        name = getattr(config, "_name", None)
        if name:
            return name
    return type(task).__name__


def load_teacher(path, task, expected_sha256=""):
    """The model of the fairseq checkpoint at `path`, built for `task` (the
    student's: the same dictionaries), frozen; a mediator-task checkpoint
    gives its generator. Returns (model, the file's SHA-256).

    Refused in one line (FlagError) naming the file: no such file, a
    damaged file (fairseq_ot.compat.checkpoint_safety), another task kind,
    other dictionaries (recorded vocabulary, or the embedding shapes), and a
    SHA-256 other than `expected_sha256` when that is given."""
    flag = "--teacher-path"
    if not os.path.isfile(path):
        raise FlagError(f"{flag} {path}: no such file")
    sha256 = file_sha256(path)
    if expected_sha256 and sha256 != expected_sha256:
        raise FlagError(f"{flag} {path}: SHA-256 {sha256}, not the --teacher-sha256 "
                        f"{expected_sha256} the run was started with (the teacher changed)")
    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    cfg = state.get("cfg")
    if cfg is None or cfg.get("model") is None:
        raise FlagError(f"{flag} {path}: not a fairseq model checkpoint (no model config)")
    theirs, ours = task_kind(cfg["task"]["_name"]), task_kind(task_name(task))
    if theirs != ours:
        raise FlagError(f"{flag} {path}: a {cfg['task']['_name']} checkpoint, not a model of "
                        f"the student's task kind {ours}")
    require_same_vocabulary(state.get("task_state") or {}, task, f"{flag} {path}")
    weights = state["model"]
    prefix = f"{GENERATOR}."
    if any(key.startswith(prefix) for key in weights):
        weights = {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}
    model = models.build_model(cfg["model"], task)
    load_plain_state(model, weights, cfg["model"], f"{flag} {path}", "the checkpoint", "teacher")
    model.eval()
    model.requires_grad_(False)
    return model, sha256


class FrozenTeacher:
    """A teacher out of reach of the trainer (see the module docstring):
    `follow(student)` returns it on the student's device and in its
    floating-point dtype."""

    def __init__(self, model, path, sha256):
        self.model, self.path, self.sha256 = model, path, sha256

    def follow(self, student):
        reference = next(student.parameters())
        own = next(self.model.parameters())
        if own.device != reference.device or own.dtype != reference.dtype:
            self.model.to(device=reference.device, dtype=reference.dtype)
        # eval always: nothing may switch the teacher's dropout on
        return self.model.eval()
