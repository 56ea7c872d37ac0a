"""A generator and its mediator held as one fairseq model.

fairseq's trainer owns one model and one optimizer: holding both networks in
one module lets it update, checkpoint and distribute them together. Everything
fairseq asks of a model outside the training criterion (forward, normalized
probabilities, targets, maximum positions, generation) is the generator's, so
`fairseq-generate` and `fairseq-interactive` see the generator alone.

A plain fairseq checkpoint (an MLE model: keys without the `generator.` and
`mediator.` prefixes) loads into the generator, a warm start; the mediator
then starts as the model was told (`mediator_init`). A mediator-task
checkpoint loads both networks, except in a warm start (`--finetune-from-model`),
which takes its generator alone and starts the mediator likewise."""

import logging
import os

import torch
from fairseq import checkpoint_utils
from fairseq.models import BaseFairseqModel
from fairseq.tasks import TASK_REGISTRY

from fairseq_ot.errors import FlagError

logger = logging.getLogger(__name__)

GENERATOR, MEDIATOR = "generator", "mediator"
# --mediator-init: besides these, the path of a plain checkpoint
RANDOM_INIT, GENERATOR_INIT = "random", GENERATOR


class GeneratorMediatorModel(BaseFairseqModel):
    # read by fairseq_ot.compat.ddp_backend before PyTorch's DDP wraps the model
    pytorch_ddp_refusal = ("--ddp-backend pytorch_ddp refuses the several forwards per update of cot and gjs: "
                           "use --ddp-backend legacy_ddp")
    # True while fairseq-train loads --finetune-from-model (fairseq_ot.compat.warm_start):
    # the weights alone do not tell a warm start from a resume
    warm_starting = False

    def __init__(self, generator, mediator, mediator_init=RANDOM_INIT,
                 warm_start_source="the plain checkpoint"):
        """`mediator_init`: what the mediator starts from when a plain
        checkpoint warm-starts the generator: `random` (as built),
        `generator` (a copy of the loaded generator) or the path of a plain
        checkpoint; `warm_start_source` names that checkpoint in errors."""
        super().__init__()
        self.generator = generator
        self.mediator = mediator
        self.mediator_init = mediator_init
        self.warm_start_source = warm_start_source
        # for fairseq's composite optimizer (a learning rate per group)
        for group, module in ((GENERATOR, generator), (MEDIATOR, mediator)):
            for parameter in module.parameters():
                parameter.param_group = group

    def forward(self, *args, **kwargs):
        return self.generator(*args, **kwargs)

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        return self.generator.get_normalized_probs(net_output, log_probs, sample)

    def get_targets(self, sample, net_output):
        return self.generator.get_targets(sample, net_output)

    def max_positions(self):
        return self.generator.max_positions()

    def max_decoder_positions(self):
        return self.generator.max_decoder_positions()

    @property
    def encoder(self):
        return getattr(self.generator, "encoder", None)

    @property
    def decoder(self):
        return self.generator.decoder

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        """Both networks from a checkpoint of this model (a resume, or
        generation). A warm start loads the generator alone, from a plain
        fairseq checkpoint's model or a mediator-task checkpoint's generator,
        then initialises the mediator (fairseq loads `--finetune-from-model`
        only when the save dir has no checkpoint_last.pt, so a resume never
        starts either network again)."""
        if any(key.startswith((f"{GENERATOR}.", f"{MEDIATOR}.")) for key in state_dict):
            if not self.warm_starting:
                return super().load_state_dict(state_dict, strict, model_cfg, args)
            # its mediator, of whatever size, is not the one --mediator-init asks for
            logger.info(f"{self.warm_start_source} is a mediator-task checkpoint: its generator "
                        f"starts the generator, --mediator-init {self.mediator_init} the mediator")
            state_dict = network_state(state_dict, GENERATOR)
        loaded = load_plain_state(self.generator, state_dict, model_cfg,
                                  self.warm_start_source, "the checkpoint", GENERATOR)
        self.initialise_mediator()
        return loaded

    def initialise_mediator(self):
        """The mediator after a warm start: as built, a copy of the generator
        (built with the generator's model arguments), or a plain checkpoint's model."""
        if self.mediator_init == RANDOM_INIT:
            return
        source = f"--mediator-init {self.mediator_init}"
        if self.mediator_init == GENERATOR_INIT:
            load_plain_state(self.mediator, self.generator.state_dict(), None, source,
                             "the generator", MEDIATOR)
            return
        if not os.path.isfile(self.mediator_init):
            raise FlagError(f"{source}: no such file (random, generator or a checkpoint)")
        state = checkpoint_utils.load_checkpoint_to_cpu(self.mediator_init)
        load_plain_state(self.mediator, state["model"], None, source, "the checkpoint", MEDIATOR)


def network_state(state_dict, network):
    """The weights of one network (GENERATOR, MEDIATOR) in a state dict of
    this model, as the plain model's state dict (the prefix dropped)."""
    prefix = f"{network}."
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def load_plain_state(module, state_dict, model_cfg, source, origin, target):
    """Load a fairseq model's `state_dict` into `module` as fairseq loads a
    model (old checkpoints upgraded, LayerDrop layers pruned by `model_cfg`),
    strictly. A key or shape that does not fit is a one-line FlagError
    naming the first mismatch: `source` (the flag that named the weights),
    `origin` (where they come from) and `target` (the network) phrase it."""
    module.upgrade_state_dict(state_dict)
    state_dict = checkpoint_utils.prune_state_dict(state_dict, model_cfg)
    require_fit(state_dict, module.state_dict(), source, origin, target)
    # the module's own load_state_dict would upgrade and prune a second time
    return torch.nn.Module.load_state_dict(module, state_dict, strict=True)


def require_fit(loaded, own, source, origin, target):
    """Refuse `loaded` unless it has exactly the keys and shapes of `own`."""
    missing = [key for key in own if key not in loaded]
    if missing:
        raise FlagError(f"{source}: the {target} has {first_of(missing)}, {origin} has not "
                        "(another architecture)")
    unexpected = [key for key in loaded if key not in own]
    if unexpected:
        raise FlagError(f"{source}: {origin} has {first_of(unexpected)}, the {target} has not "
                        "(another architecture)")
    for key, tensor in own.items():
        if loaded[key].shape != tensor.shape:
            raise FlagError(f"{source}: {key} has shape {list(loaded[key].shape)} in {origin}, "
                            f"{list(tensor.shape)} in the {target} (another dictionary or "
                            "architecture)")


def first_of(keys):
    """`a` or `a and 3 more`: one line however many keys differ."""
    more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
    return f"{keys[0]}{more}"


def mediator_tasks():
    """{name: name of the plain task it extends} of every registered fairseq
    task whose `builds_model` is GeneratorMediatorModel (the mediator tasks),
    e.g. {"mediator_translation": "translation", ...}: derived from the task
    classes, so a new mediator task needs no list updated by hand."""
    names = {task: name for name, task in TASK_REGISTRY.items()}
    return {
        name: next(names[base] for base in task.__mro__[1:] if base in names)
        for name, task in sorted(TASK_REGISTRY.items())
        if getattr(task, "builds_model", None) is GeneratorMediatorModel
    }
