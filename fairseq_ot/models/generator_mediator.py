"""A generator and its mediator held as one fairseq model.

fairseq's trainer owns one model and one optimizer: holding both networks in
one module lets it update, checkpoint and distribute them together. Everything
fairseq asks of a model outside the training criterion (forward, normalized
probabilities, targets, maximum positions, generation) is the generator's, so
`fairseq-generate` and `fairseq-interactive` see the generator alone."""

from fairseq.models import BaseFairseqModel
from fairseq.tasks import TASK_REGISTRY

GENERATOR, MEDIATOR = "generator", "mediator"


class GeneratorMediatorModel(BaseFairseqModel):
    def __init__(self, generator, mediator):
        super().__init__()
        self.generator = generator
        self.mediator = mediator
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
