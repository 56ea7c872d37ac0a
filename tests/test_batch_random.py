"""The criterions' random draws are a function of (seed, update, batch):
the same whatever torch's global generator has drawn before (which differs
between one process with --update-freq and several processes), different
at another update or for other sentences."""

import pytest
import torch

from conftest import build
from criterion_flags import CRITERIA
from fairseq_ot.modules.batch_random import batch_generator

STOCHASTIC = ["scheduled_sampling-two_pass", "scheduled_sampling-stepwise", "gjs-mediator", "cot"]


def draws(seed, update, ids):
    return torch.rand(8, generator=batch_generator(seed, update, torch.tensor(ids)))


def test_generator_depends_on_seed_update_and_ids_only():
    torch.manual_seed(0)
    first = draws(1, 5, [3, 9, 4])
    torch.rand(100)  # the global stream moves on
    assert torch.equal(draws(1, 5, [3, 9, 4]), first)
    for other in (draws(2, 5, [3, 9, 4]), draws(1, 6, [3, 9, 4]), draws(1, 5, [3, 9, 5]),
                  draws(1, 5, [9, 3, 4])):
        assert not torch.equal(other, first)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_criterion_loss_ignores_the_global_generator_but_follows_the_update(toy_data_bin, batch, name):
    _, model, criterion = build(toy_data_bin, *CRITERIA[name])
    model.train()
    losses = {}
    for update, global_seed in ((2, 0), (2, 1), (4, 0)):
        criterion.set_num_updates(update)
        torch.manual_seed(global_seed)
        with torch.no_grad():
            losses[update, global_seed] = float(criterion(model, batch)[0])
    assert losses[2, 0] == losses[2, 1]
    # update 4: other coins and samples (and, for cot and gjs, a generator term)
    assert losses[4, 0] != losses[2, 0]
