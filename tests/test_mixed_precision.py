"""Half precision, as --memory-efficient-fp16 runs it on CPU (the model's
weights in float16): every criterion's loss on one batch is finite and close
to float32's, and the numerically delicate parts (OT solver, log-softmax and
KL to the mediator, the GJS mixture) compute in float32 whatever they are fed.
On CPU, --fp16 and --memory-efficient-fp16 skip an overflowing update and
halve the loss scale as on a GPU (fairseq_ot/compat/cpu_fp16.py). The
fairseq-train runs with --memory-efficient-fp16 are in
test_data_parallel_and_resumption.py."""

import math

import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.logging import metrics
from fairseq.trainer import Trainer

from conftest import TINY_TRANSFORMER, USER_DIR, build
from criterion_flags import CRITERIA, TEACHER
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
# distill needs a teacher checkpoint, which a fixture of its own tests trains:
# its half-precision and autocast losses are tested in test_distill.py
HALF_CRITERIA = [name for name, flags in CRITERIA.items() if TEACHER not in flags]
# per criterion: the internal function whose results must be float32
INTERNALS = {"ot_seq": (soft_embedding, "solve_ot"), "gjs-token": (gjs_module, "token_js_pi"),
             "gjs-mediator": (mediator_objective, "step_kl"), "cot": (mediator_objective, "step_kl")}


def result_tensors(result):
    if isinstance(result, torch.Tensor):
        return [result]
    return [value for value in result if isinstance(value, torch.Tensor)]  # OTResult


@pytest.mark.parametrize("name", HALF_CRITERIA)
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
    logits_p.requires_grad_()
    kl_half = step_kl(logits_p, masked_log_softmax(logits_q, banned), banned)
    kl_float = step_kl(logits_p.float(), masked_log_softmax(logits_q.float(), banned), banned)
    assert kl_half.dtype == torch.float32 and torch.equal(kl_half, kl_float)
    grad_half, = torch.autograd.grad(kl_half.sum(), logits_p)
    assert grad_half.dtype == torch.float16 and bool(torch.isfinite(grad_half).all())
    for dtype in (torch.float16, torch.bfloat16):  # autocast lowers matrix products such as vecdot
        with torch.autocast("cpu", dtype=dtype):
            kl_autocast = step_kl(logits_p.float(), masked_log_softmax(logits_q.float(), banned), banned)
        assert kl_autocast.dtype == torch.float32 and torch.equal(kl_autocast, kl_float)
    target = torch.randint(3, 11, (6,), generator=generator)
    for smoothing in (0.0, 0.1):
        lprobs = torch.log_softmax(logits_p.float(), -1).view(6, 11).half()
        js_half = token_js_pi(lprobs, target, 0.3, smoothing)
        assert js_half.dtype == torch.float32
        assert torch.equal(js_half, token_js_pi(lprobs.float(), target, 0.3, smoothing))
        assert bool(torch.isfinite(js_half).all())


def train_on_cpu(data_bin, precision, init_scale, updates, skip=0):
    """A fairseq Trainer in `precision` on CPU, fed the batches of the first
    epoch after `skip` of them until it has made `updates` updates; returns
    the trainer, the logging output of each update and the number of
    batches it skipped."""
    parser = options.get_training_parser()
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, [
        str(data_bin), "--user-dir", USER_DIR, "--task", "translation", "--cpu",
        *TINY_TRANSFORMER, "--dropout", "0", "--criterion", "label_smoothed_cross_entropy",
        "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "300", "--seed", "1",
        precision, "--fp16-init-scale", str(init_scale),
    ]))
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(1)
    trainer = Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))
    batches = trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=True)
    logged, skipped = [], 0
    with metrics.aggregate(new_root=True):
        for index, sample in enumerate(batches):
            if index < skip:
                continue
            output = trainer.train_step([sample])
            if output is None:
                skipped += 1
            else:
                logged.append(output)
            if trainer.get_num_updates() == updates:
                return trainer, logged, skipped
    raise AssertionError(f"{updates} updates not reached in one epoch")


@pytest.mark.parametrize("precision", ["--fp16", "--memory-efficient-fp16"])
def test_an_overflow_on_cpu_halves_the_loss_scale_and_skips_the_update(toy_data_bin, precision):
    # float16 cannot hold a loss scaled by 2**30: every batch overflows until
    # the scale has been halved often enough
    trainer, logged, skipped = train_on_cpu(toy_data_bin, precision, 2**30, updates=3)
    assert skipped > 0 and len(logged) == 3
    assert trainer.optimizer.scaler.loss_scale == 2**30 // 2**skipped
    assert all(math.isfinite(output["loss"]) for output in logged)
    # the skipped updates changed nothing but the scale: starting at the
    # lowered scale on the batches after them trains identically
    reference, expected, skipped_again = train_on_cpu(
        toy_data_bin, precision, 2**30 // 2**skipped, updates=3, skip=skipped)
    assert skipped_again == 0
    assert [output["loss"] for output in logged] == [output["loss"] for output in expected]
    for (name, found), wanted in zip(trainer.model.state_dict().items(),
                                     reference.model.state_dict().values()):
        assert torch.equal(found, wanted), name
