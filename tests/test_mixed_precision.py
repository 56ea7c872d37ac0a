"""Half precision, as --memory-efficient-fp16 runs it on CPU (the model's
weights in float16): every criterion's loss on one batch is finite and close
to float32's, and the numerically delicate parts (OT solver, log-softmax and
KL to the mediator, the GJS mixture) compute in float32 whatever they are fed.
The fairseq-train runs with --memory-efficient-fp16 are in
test_data_parallel_and_resumption.py."""

import math

import pytest
import torch

from conftest import build
from criterion_flags import CRITERIA
from fairseq_ot.criterions import mediator_objective
from fairseq_ot.criterions import gjs as gjs_module
from fairseq_ot.modules import soft_embedding
from fairseq_ot.modules.divergences import masked_log_softmax, step_kl, token_js_pi
from fairseq_ot.modules.soft_embedding import sequence_ot_distance

# float16 keeps 11 significant bits, and the losses are sums over a few
# hundred tokens computed in float32 from float16 logits: measured relative
# differences are below 1e-4 for every criterion on this batch.
RELATIVE_TOLERANCE = 1e-3
# every warm-up over, a scheduled-sampling eps of 0.5, a cot generator update
UPDATE = 4
# per criterion: the internal function whose results must be float32
INTERNALS = {"ot_seq": (soft_embedding, "solve_ot"), "gjs-token": (gjs_module, "token_js_pi"),
             "gjs-mediator": (mediator_objective, "step_kl"), "cot": (mediator_objective, "step_kl")}


def result_tensors(result):
    if isinstance(result, torch.Tensor):
        return [result]
    return [value for value in result if isinstance(value, torch.Tensor)]  # OTResult


@pytest.mark.parametrize("name", list(CRITERIA))
def test_half_precision_loss_is_finite_and_close_to_float32(toy_data_bin, batch, name, monkeypatch):
    _, model, criterion = build(toy_data_bin, *CRITERIA[name])
    if hasattr(criterion, "set_num_updates"):
        criterion.set_num_updates(UPDATE)
    model.train()
    internal = next((INTERNALS[key] for key in INTERNALS if name.startswith(key)), None)
    dtypes = []
    if internal is not None:
        module, function_name = internal
        function = getattr(module, function_name)

        def recording(*args, **kwargs):
            result = function(*args, **kwargs)
            dtypes.extend(t.dtype for t in result_tensors(result))
            return result

        monkeypatch.setattr(module, function_name, recording)
    if hasattr(criterion, "draw_samples"):
        # A float16 logit can move a cumulative sum across the uniform draw,
        # and one different token changes the rest of a sampled sequence: the
        # half-precision pass is scored on the float32 pass's samples.
        draw_samples, drawn = criterion.draw_samples, []

        def replaying(*args):
            drawn.append(drawn[0] if drawn else draw_samples(*args))
            return drawn[-1]

        monkeypatch.setattr(criterion, "draw_samples", replaying)
    with torch.no_grad():
        full, _, _ = criterion(model, batch)
        half, _, _ = criterion(model.half(), batch)
    assert math.isfinite(float(half))
    assert math.isclose(float(half), float(full), rel_tol=RELATIVE_TOLERANCE), (
        float(half), float(full))
    if internal is not None:
        assert dtypes and set(dtypes) == {torch.float32}, dtypes


def test_ot_distance_of_half_inputs_is_the_float32_distance_of_their_values():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 8, generator=generator).half()
    y = torch.randn(3, 4, 8, generator=generator).half()
    x_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]).bool()
    y_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]).bool()
    args = dict(solver="ipot", beta=0.5, iters=20, inner_iters=1, gradient="envelope")
    half = sequence_ot_distance(x, x_mask, y, y_mask, **args)
    assert half.dtype == torch.float32
    assert torch.equal(half, sequence_ot_distance(x.float(), x_mask, y.float(), y_mask, **args))


def test_mediator_kl_and_gjs_mixture_of_half_logits_are_computed_in_float32():
    generator = torch.Generator().manual_seed(1)
    # logits of a magnitude where float16 exp() would overflow
    logits_p = (torch.randn(2, 3, 11, generator=generator) * 8).half()
    logits_q = (torch.randn(2, 3, 11, generator=generator) * 8).half()
    banned = (1, 2)
    kl_half = step_kl(masked_log_softmax(logits_p, banned), masked_log_softmax(logits_q, banned))
    kl_float = step_kl(masked_log_softmax(logits_p.float(), banned),
                       masked_log_softmax(logits_q.float(), banned))
    assert kl_half.dtype == torch.float32 and torch.equal(kl_half, kl_float)
    target = torch.randint(3, 11, (6,), generator=generator)
    for smoothing in (0.0, 0.1):
        lprobs = torch.log_softmax(logits_p.float(), -1).view(6, 11).half()
        js_half = token_js_pi(lprobs, target, 0.3, smoothing)
        assert js_half.dtype == torch.float32
        assert torch.equal(js_half, token_js_pi(lprobs.float(), target, 0.3, smoothing))
        assert bool(torch.isfinite(js_half).all())
