"""`--criterion distill` (fairseq_ot/criterions/distill.py), its frozen teacher
(fairseq_ot/models/teacher.py) and sequence-level KD data
(fairseq_ot/distillation/sequence_kd.py), each against a reference of its
own: D_beta from its definition in float64 and in mpmath (50 digits), the
criterion's loss and gradients from full-sequence forwards of float64 copies
of the student and of a teacher loaded by fairseq, fairseq's
label_smoothed_cross_entropy, one sentence at a time, every sample of a tiny
language model and of a tiny translation model enumerated, fairseq-generate's
beam outputs, and real fairseq-train runs.

D_beta = JS_beta[T||S] / (beta (1 - beta)), JS_beta = beta KL[T||M] +
(1 - beta) KL[S||M], M = beta T + (1 - beta) S; D_0 = KL[T||S], D_1 = KL[S||T].
Tolerances (float32 against float64 or mpmath): relative 1e-5 on losses,
1e-4 on gradients, unless said otherwise where they are asserted."""

import copy
import hashlib
import itertools
import json
import math
import os
import shutil
import sys

import mpmath
import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.data import Dictionary, data_utils
from mpmath import mp, mpf
from scipy import stats

from conftest import (
    REPO, TINY_TRANSFORMER, USER_DIR, assert_batch_sums_its_sentences, build, one_line_error, run_cli, sentences,
)
from criterion_flags import MEDIATOR, teacher_args
import fairseq_ot.criterions.distill as distill_module
from fairseq_ot.checkpoints.surgery import extract_generator
from fairseq_ot.cli import build_seqkd
from fairseq_ot.data_prep.pipeline import PrepOptions, SplitFiles, prepare
from fairseq_ot.distillation import sequence_kd
from fairseq_ot.errors import FlagError
from fairseq_ot.modules.batch_random import sentence_uniforms
from fairseq_ot.modules.divergences import MIN_DISTILL_BETA, js_beta
from fairseq_ot.toy_corpus import write_toy_corpus

RUNNER = REPO / "tests" / "fairseq_train_several.py"
# the betas of the definition's two ends, its interior and next to the ends
BETAS = [0.0, 1e-9, 0.1, 0.5, 0.9, 1 - 1e-9, 1.0]
LOSS_RTOL, GRAD_RTOL = 1e-5, 1e-4
TINY_LM = ["--arch", "transformer_lm", "--decoder-layers", "1", "--decoder-embed-dim", "16",
           "--decoder-ffn-embed-dim", "32", "--decoder-attention-heads", "2",
           "--share-decoder-input-output-embed", "--tokens-per-sample", "16", "--sample-break-mode", "eos"]
# the student of the fairseq-train run: other shapes than the teacher's
STUDENT_SHAPE = ["--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32"]
# fairseq 0.12.3's batch_by_size (data_utils_fast) drops a last batch smaller
# than --required-batch-size-multiple (default 8): 32 of the 37 test sentences
EVERY_BATCH = ["--required-batch-size-multiple", "1"]
TRAIN = ["--optimizer", "adam", "--max-tokens", "300", "--num-workers", "0", "--disable-validation",
         "--no-epoch-checkpoints", "--seed", "1"]


def relative_error(ours, reference):
    """|ours - reference| / |reference| in float64, tensors by their norms."""
    ours, reference = torch.as_tensor(ours).double(), torch.as_tensor(reference).double()
    return float((ours - reference).norm() / reference.norm())


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared folder (data_prep.pipeline) of a small toy corpus, BPE-split:
    its dictionary is not toy_data_bin's."""
    root = tmp_path_factory.mktemp("seqkd")
    raw = root / "raw"
    write_toy_corpus(raw, n_train=80, n_valid=12, n_test=12, seed=7)
    splits = [SplitFiles(name, raw / f"{name}.src", raw / f"{name}.tgt") for name in ("train", "valid", "test")]
    prepare(root / "prepared", splits, PrepOptions("src", "tgt", "en", "en", 40, pretokenized=True))
    return root / "prepared"


@pytest.fixture(scope="module")
def teachers(toy_data_bin, tiny_lm_data_bin, prepared, tmp_path_factory):
    """Teacher checkpoints, trained in one process (fairseq_train_several.py):
    toy (TINY_TRANSFORMER on toy_data_bin, 80 label-smoothed MLE updates), lm
    (TINY_LM on tiny_lm_data_bin), cot (2 cot updates, mediator_translation,
    on toy_data_bin) and seqkd (TINY_TRANSFORMER on `prepared`: other
    dictionaries than toy_data_bin's)."""
    root = tmp_path_factory.mktemp("teachers")
    args = {
        "toy": teacher_args(toy_data_bin, root / "toy", updates=80),
        "lm": [tiny_lm_data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "language_modeling", *TINY_LM,
               "--dropout", "0", "--criterion", "cross_entropy", "--lr", "0.01", *TRAIN,
               "--max-tokens", "64", "--max-update", "30", "--save-dir", root / "lm"],
        "cot": [toy_data_bin, "--user-dir", USER_DIR, "--cpu", *TINY_TRANSFORMER, "--dropout", "0",
                "--criterion", "cot", *MEDIATOR, "--lr", "0.005", *TRAIN, "--max-update", "2",
                "--save-dir", root / "cot"],
        "seqkd": teacher_args(prepared / "data-bin", root / "seqkd", updates=100),
    }
    for name in args:
        (root / name).mkdir()
    spec = root / "runs.json"
    spec.write_text(json.dumps([{"args": [str(a) for a in run], "log": str(root / name / "train.log")}
                                for name, run in args.items()]))
    run_cli(sys.executable, RUNNER, spec)
    return {name: root / name / "checkpoint_last.pt" for name in args}


def distill(data_bin, teacher, *flags, arch=TINY_TRANSFORMER, task="translation"):
    """Task, student and --criterion distill, built as fairseq-train builds
    them (conftest.build)."""
    return build(data_bin, "--criterion", "distill", "--teacher-path", str(teacher), *map(str, flags),
                 arch=arch, task=task)


def load_plain(path, task):
    """A checkpoint's model as fairseq itself loads it (not load_teacher)."""
    (model,), _ = checkpoint_utils.load_model_ensemble([str(path)], task=task)
    return model.eval()


def float64(model):
    return copy.deepcopy(model).double()


def parameter_grads(model):
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).double().flatten()
                      for p in model.parameters()])


# ---------------------------------------------------------------- references


def teacher_log_probs_by_definition(logits, tau=1.0, topk=0):
    """log T in float64: softmax(logits / tau), or over the K largest logits
    of each position, renormalised there (-inf elsewhere)."""
    scaled = logits.double() / tau
    if topk:
        keep = torch.zeros_like(scaled, dtype=torch.bool).scatter_(-1, scaled.topk(topk, -1).indices, True)
        scaled = scaled.masked_fill(~keep, -math.inf)
    return F.log_softmax(scaled, -1)


def d_beta_by_definition(student_logits, log_t, beta, tau=1.0):
    """D_beta(T||S) per position in float64 from the definition, S =
    softmax(student_logits / tau); KL sums entry by entry, 0 log 0 = 0."""
    log_s = F.log_softmax(student_logits.double() / tau, -1)
    s, t = log_s.exp(), log_t.exp()

    def kl(p, log_p, log_q):
        return torch.where(p > 0, p * (log_p - log_q), 0.0).sum(-1)

    if beta == 0:
        return kl(t, log_t, log_s)
    if beta == 1:
        return kl(s, log_s, log_t)
    log_m = torch.log(beta * t + (1 - beta) * s)
    return (beta * kl(t, log_t, log_m) + (1 - beta) * kl(s, log_s, log_m)) / (beta * (1 - beta))


def mp_log_softmax(logits):
    top = max(logits)
    total = top + mpmath.log(mpmath.fsum(mpmath.exp(z - top) for z in logits))
    return [z - total for z in logits]


def mp_d_beta(student_logits, teacher_logits, beta):
    """D_beta(T||S) of one position in mpmath, from the definition."""
    log_s, log_t = mp_log_softmax(student_logits), mp_log_softmax(teacher_logits)
    s, t = [mpmath.exp(v) for v in log_s], [mpmath.exp(v) for v in log_t]
    if beta == 0:
        return mpmath.fsum(p * (a - b) for p, a, b in zip(t, log_t, log_s))
    if beta == 1:
        return mpmath.fsum(q * (a - b) for q, a, b in zip(s, log_s, log_t))
    b = mpf(beta)
    m = [b * p + (1 - b) * q for p, q in zip(t, s)]
    js = (b * mpmath.fsum(p * (a - mpmath.log(c)) for p, a, c in zip(t, log_t, m))
          + (1 - b) * mpmath.fsum(q * (a - mpmath.log(c)) for q, a, c in zip(s, log_s, m)))
    return js / (b * (1 - b))


def mp_d_beta_and_gradient(student_logits, teacher_logits, beta):
    """mp_d_beta and its gradient in the student's logits, by mpmath's
    numerical differentiation at 50 digits (not the analytic form the
    implementation uses)."""
    zs = [mpf(float(z)) for z in student_logits]
    zt = [mpf(float(z)) for z in teacher_logits]
    gradient = []
    for j in range(len(zs)):
        def along(x, j=j):
            return mp_d_beta(zs[:j] + [x] + zs[j + 1:], zt, beta)
        gradient.append(float(mpmath.diff(along, zs[j])))
    return float(mp_d_beta(zs, zt, beta)), gradient


def random_logits(rows, vocabulary, scale, seed):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, vocabulary, generator=generator) * scale,
            torch.randn(rows, vocabulary, generator=generator) * scale)


# ---------------------------------------------------------------- 1. js_beta


@pytest.mark.parametrize("scale", [3, 30], ids=["spread", "peaked"])
@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_js_beta_loss_and_logit_gradient_equal_the_float64_definition(beta, scale):
    student, teacher = random_logits(64, 1000, scale, seed=1)
    logits = student.clone().requires_grad_()
    ours = js_beta(F.log_softmax(logits, -1), F.log_softmax(teacher, -1), beta)
    (grad,) = torch.autograd.grad(ours.sum(), logits)
    logits64 = student.double().requires_grad_()
    expected = d_beta_by_definition(logits64, F.log_softmax(teacher.double(), -1), beta)
    (expected_grad,) = torch.autograd.grad(expected.sum(), logits64)
    assert ours.dtype == torch.float32 and float(expected.min()) > 0.1
    assert relative_error(ours.sum(), expected.sum()) < LOSS_RTOL
    assert torch.allclose(ours.double(), expected.detach(), rtol=LOSS_RTOL, atol=0)
    # per position: at scale 30 the softmax saturates, and float32's
    # log-softmax alone rounds S(v) near 1 by 1e-7, which the gradient
    # multiplies by log-ratios of up to D: 1e-6 (1 + D) more there
    error = (grad.double() - expected_grad).norm(dim=-1)
    bound = GRAD_RTOL * expected_grad.norm(dim=-1) + 1e-6 * (1 + expected.detach())
    assert bool((error <= bound).all()), float((error / bound).max())
    if scale == 3:
        assert relative_error(grad, expected_grad) < GRAD_RTOL


@pytest.mark.parametrize("scale", [3, 30], ids=["spread", "peaked"])
@pytest.mark.parametrize("beta", BETAS + [MIN_DISTILL_BETA])
def test_js_beta_equals_mpmath_near_and_at_the_ends(beta, scale):
    """V = 7 in mpmath at 50 digits: next to 0 and 1, where JS_beta is
    1e-9 of D_beta, the float64 definition itself loses digits."""
    mp.dps = 50
    student, teacher = random_logits(4, 7, scale, seed=2)
    logits = student.clone().requires_grad_()
    ours = js_beta(F.log_softmax(logits, -1), F.log_softmax(teacher, -1), beta)
    (grad,) = torch.autograd.grad(ours.sum(), logits)
    for row in range(4):
        expected, expected_grad = mp_d_beta_and_gradient(student[row], teacher[row], beta)
        assert math.isclose(float(ours[row]), expected, rel_tol=LOSS_RTOL), (row, float(ours[row]), expected)
        # relative 1e-5, and float32's rounding of S near 1 (see above)
        expected_grad = torch.tensor(expected_grad, dtype=torch.float64)
        error = float((grad[row].double() - expected_grad).norm())
        bound = 1e-5 * float(expected_grad.norm()) + 1e-6 * (1 + expected)
        assert error <= bound, (row, grad[row], expected_grad)
        if scale == 3:
            assert relative_error(grad[row], expected_grad) < 1e-5


@pytest.mark.parametrize("tau", [0.5, 2.0])
@pytest.mark.parametrize("beta", [0.0, 1e-9, 0.5, 1 - 1e-9, 1.0])
def test_criterion_temperature_divides_both_logits_once(toy_data_bin, teachers, beta, tau):
    """criterion.divergence at tau against mpmath's D_beta of logits / tau
    (a power of two: the same float32 numbers), loss and logit gradient:
    no tau^2 rescaling, tau applied to the teacher too."""
    mp.dps = 50
    _, _, criterion = distill(toy_data_bin, teachers["toy"], "--distill-beta", repr(beta),
                              "--distill-temperature", tau)
    student, teacher = random_logits(3, 7, 4, seed=3)
    logits = student.clone().requires_grad_()
    ours = criterion.divergence(logits, teacher)
    (grad,) = torch.autograd.grad(ours, logits)
    expected, expected_grad = 0.0, []
    for row in range(3):
        value, gradient = mp_d_beta_and_gradient(student[row] / tau, teacher[row] / tau, beta)
        expected += value
        expected_grad.append([g / tau for g in gradient])
    assert math.isclose(float(ours), expected, rel_tol=LOSS_RTOL)
    assert relative_error(grad, expected_grad) < 1e-5


# ---------------------------------------------------------------- criterion on batches


@pytest.mark.parametrize("beta,tau,topk", [(0.0, 1.0, 0), (0.5, 2.0, 0), (1.0, 0.5, 0), (0.3, 1.0, 5),
                                           (1e-9, 1.0, 0), (1 - 1e-9, 1.5, 0)])
def test_criterion_loss_and_gradients_equal_float64_forwards(toy_data_bin, teachers, batch, beta, tau, topk):
    """The criterion as fairseq calls it (padding, packed positions): its
    loss is sum_t D_beta(T_t||S_t) over the real positions, with T the
    teacher checkpoint as fairseq loads it, both models run in float64 (at
    1e-9 from the ends the float64 definition keeps 7 digits, enough here;
    a position's precision there is mpmath's test above)."""
    task, model, criterion = distill(toy_data_bin, teachers["toy"], "--distill-beta", repr(beta),
                                     "--distill-temperature", tau, "--distill-topk", topk)
    model.train()
    loss, sample_size, log = criterion(model, batch)
    loss.backward()
    student64, teacher64 = float64(model), float64(load_plain(teachers["toy"], task))
    real = batch["target"].ne(task.target_dictionary.pad())
    student_logits = student64(**batch["net_input"])[0][real]
    with torch.no_grad():
        log_t = teacher_log_probs_by_definition(teacher64(**batch["net_input"])[0][real], tau, topk)
    expected = d_beta_by_definition(student_logits, log_t, beta, tau).sum()
    expected.backward()
    assert float(expected) > 1.0
    assert relative_error(loss, expected) < LOSS_RTOL
    assert relative_error(parameter_grads(model), parameter_grads(student64)) < GRAD_RTOL
    assert sample_size == batch["ntokens"] == log["distill_positions"] == int(real.sum())
    assert relative_error(log["distill_divergence_sum"], expected) < LOSS_RTOL
    assert log["distill_on_policy_sentences"] == 0 and log["distill_sample_tokens"] == 0


# ---------------------------------------------------------------- 2. student == teacher


@pytest.mark.parametrize("scale", [3, 30])
@pytest.mark.parametrize("beta", BETAS + [MIN_DISTILL_BETA])
def test_js_beta_of_identical_distributions_is_zero_with_zero_gradient(beta, scale):
    student, _ = random_logits(16, 50, scale, seed=4)
    logits = student.clone().requires_grad_()
    lprobs = F.log_softmax(logits, -1)
    loss = js_beta(lprobs, lprobs.detach(), beta)
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert torch.equal(loss, torch.zeros_like(loss)) and torch.equal(grad.abs(), torch.zeros_like(grad))


@pytest.mark.parametrize("beta", BETAS)
def test_student_equal_to_its_teacher_has_zero_loss_and_gradient(toy_data_bin, teachers, batch, beta):
    """The student given the teacher checkpoint's weights: word-level and
    on-policy positions (half the sentences), tau 2, exactly zero."""
    task, model, criterion = distill(toy_data_bin, teachers["toy"], "--distill-beta", repr(beta),
                                     "--distill-on-policy", "0.5", "--distill-temperature", "2")
    model.load_state_dict(load_plain(teachers["toy"], task).state_dict())
    model.train()
    loss, _, log = criterion(model, batch)
    loss.backward()
    assert 0 < log["distill_on_policy_sentences"] < batch["nsentences"] and log["distill_sample_tokens"] > 0
    assert float(loss) == 0.0
    assert float(parameter_grads(model).abs().max()) == 0.0


# ---------------------------------------------------------------- 3. top-k


def test_topk_of_the_whole_vocabulary_is_the_full_teacher(toy_data_bin, teachers, batch):
    task, model, full = distill(toy_data_bin, teachers["toy"], "--distill-beta", "0.5")
    vocabulary = len(task.target_dictionary)
    _, _, every = distill(toy_data_bin, teachers["toy"], "--distill-beta", "0.5", "--distill-topk", vocabulary)
    logits = torch.randn(20, vocabulary, generator=torch.Generator().manual_seed(5)) * 4
    assert torch.allclose(every.teacher_log_probs(logits), F.log_softmax(logits, -1), rtol=0, atol=1e-6)
    assert torch.equal(full.teacher_log_probs(logits), F.log_softmax(logits, -1))
    with torch.no_grad():
        assert math.isclose(float(every(model, batch)[0]), float(full(model, batch)[0]), rel_tol=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_topk_is_renormalised_at_each_position(toy_data_bin, teachers, beta):
    """Positions whose top-3 teacher mass is 0.9999 and 0.05: each is
    renormalised to 1 by itself, as computed by hand; dividing by the batch's
    mean top-k mass instead gives another loss."""
    _, _, criterion = distill(toy_data_bin, teachers["toy"], "--distill-beta", repr(beta), "--distill-topk", 3)
    generator = torch.Generator().manual_seed(6)
    vocabulary = 64
    teacher = torch.randn(2, vocabulary, generator=generator) * 0.1
    teacher[0, :3] += torch.tensor([12.0, 11.0, 10.5])  # nearly all of row 0's mass
    student = torch.randn(2, vocabulary, generator=generator)
    probs = F.softmax(teacher.double(), -1)
    top = probs.topk(3, -1)
    mass = top.values.sum(-1)
    assert mass[0] > 0.999 and mass[1] < 0.06
    by_hand = torch.zeros_like(probs).scatter_(-1, top.indices, top.values / mass.unsqueeze(-1))
    batch_wide = torch.zeros_like(probs).scatter_(-1, top.indices, top.values / mass.mean())
    expected = d_beta_by_definition(student, by_hand.log(), beta).sum()
    ours = criterion.divergence(student, teacher)
    assert torch.allclose(criterion.teacher_log_probs(teacher).exp().double(), by_hand, rtol=1e-6, atol=1e-12)
    assert relative_error(ours, expected) < LOSS_RTOL
    # the batch-wide renormalisation (not a distribution at either position)
    log_batch_wide = batch_wide.log()
    s = F.log_softmax(student.double(), -1)
    if beta == 0:
        wrong = torch.where(batch_wide > 0, batch_wide * (log_batch_wide - s), 0.0).sum()
    else:
        wrong = d_beta_by_definition(student, log_batch_wide, beta).sum()
    assert relative_error(ours, wrong) > 1000 * LOSS_RTOL


# ---------------------------------------------------------------- 4, 5. batches, alpha


@pytest.mark.parametrize("flags", [
    ["--distill-beta", "0"],
    ["--distill-beta", "0.3", "--distill-alpha", "0.7", "--label-smoothing", "0.1", "--distill-topk", "10",
     "--distill-temperature", "1.5"],
], ids=["word_level", "alpha_smoothed"])
def test_padded_batch_is_the_sum_of_its_sentences(toy_data_bin, teachers, batch, flags):
    """fairseq's tests/test_label_smoothing.py form: the loss and every
    summed logging output of a padded batch equal the sums over its
    sentences, each alone in a batch."""
    task, model, criterion = distill(toy_data_bin, teachers["toy"], *flags)
    assert_batch_sums_its_sentences(criterion, model, task, batch, (
        "loss", "nll_loss", "ntokens", "nsentences", "sample_size", "distill_divergence_sum",
        "distill_positions", "distill_teacher_nll_sum", "distill_on_policy_sentences"), LOSS_RTOL)


@pytest.mark.parametrize("alpha,smoothing", [(0.5, 0.1), (2.0, 0.0)])
def test_alpha_adds_fairseqs_label_smoothed_loss(toy_data_bin, teachers, batch, alpha, smoothing):
    """beta 0: KL[T||S] summed (float64 forwards) + alpha x fairseq's
    LabelSmoothedCrossEntropyCriterion loss of the same model and batch;
    nll_loss is fairseq's, the teacher's NLL is fairseq's criterion run on
    the teacher checkpoint."""
    task, model, criterion = distill(toy_data_bin, teachers["toy"], "--distill-alpha", alpha,
                                     "--label-smoothing", smoothing)
    model.train()
    loss, _, log = criterion(model, batch)
    fairseq_criterion = LabelSmoothedCrossEntropyCriterion(task, False, smoothing)
    with torch.no_grad():
        smoothed, _, fairseq_log = fairseq_criterion(model, batch)
        _, _, teacher_log = LabelSmoothedCrossEntropyCriterion(task, False, 0.0)(
            load_plain(teachers["toy"], task), batch)
        real = batch["target"].ne(task.target_dictionary.pad())
        log_t = F.log_softmax(float64(load_plain(teachers["toy"], task))(**batch["net_input"])[0][real], -1)
        kl = d_beta_by_definition(float64(model)(**batch["net_input"])[0][real], log_t, 0.0).sum()
    assert relative_error(loss, kl + alpha * smoothed.double()) < LOSS_RTOL
    assert relative_error(log["distill_divergence_sum"], kl) < LOSS_RTOL
    assert relative_error(log["nll_loss"], fairseq_log["nll_loss"]) < LOSS_RTOL
    assert relative_error(log["distill_teacher_nll_sum"], teacher_log["nll_loss"]) < LOSS_RTOL


# ---------------------------------------------------------------- 6. on-policy


def outcomes(dictionary, max_len):
    """Every sampler outcome of at most `max_len` tokens (EOS included):
    [(tokens, forced)], `forced` where the length limit put the EOS."""
    eos = dictionary.eos()
    words = [i for i in range(len(dictionary)) if i not in (dictionary.pad(), dictionary.bos(), eos)]
    return [(list(prefix) + [eos], length == max_len - 1)
            for length in range(max_len) for prefix in itertools.product(words, repeat=length)]


def padded(rows, pad):
    """[(tokens, forced)] -> tokens [S, L] right-padded and forced masks [S, L]."""
    length = max(len(tokens) for tokens, _ in rows)
    tokens = torch.tensor([t + [pad] * (length - len(t)) for t, _ in rows])
    forced = torch.zeros_like(tokens, dtype=torch.bool)
    for row, (t, is_forced) in enumerate(rows):
        forced[row, len(t) - 1] = is_forced
    return tokens, forced


def drawing(monkeypatch, batch, rows_by_id, pad, calls=None):
    """Patch the criterion's draw_continuations: the sentence of id i of
    `batch` gets the outcome rows_by_id[i]; `calls` records (ids,
    max_len_a, max_len_b) of each call."""
    def draw(model, net_input, order, max_len_a, max_len_b, eos, pad_, banned, rng):
        ids = batch["id"][order].tolist()
        if calls is not None:
            calls.append((ids, max_len_a, max_len_b))
        return padded([rows_by_id[i] for i in ids], pad)

    monkeypatch.setattr(distill_module, "draw_continuations", draw)


def decoder_logits(model, source, tokens, eos=2):
    """[L, V] next-token logits of a full forward of `tokens` (EOS-ended)
    behind EOS (fairseq dictionaries' 2): after `source` (a 1-D tensor
    without padding) for a translation model, alone for a language model."""
    prefix = torch.tensor([[eos] + tokens[:-1]])
    if source is None:
        return model(prefix, src_lengths=torch.tensor([prefix.size(1)]))[0][0]
    return model(source.unsqueeze(0), torch.tensor([source.numel()]), prefix)[0][0]


def sequence_d_beta(student64, teacher64, source, tokens, beta, tau, topk=0):
    """sum_t D_beta(T(.|y<t)||S(.|y<t)) over every position of y, float64."""
    with torch.no_grad():
        log_t = teacher_log_probs_by_definition(decoder_logits(teacher64, source, tokens), tau, topk)
    return d_beta_by_definition(decoder_logits(student64, source, tokens), log_t, beta, tau).sum()


def sequence_log_prob(student64, source, tokens, forced, banned):
    """log S(y) under the sampler: softmax over all but `banned`, the forced
    EOS not drawn."""
    with torch.no_grad():
        logits = decoder_logits(student64, source, tokens)
        logits[:, list(banned)] = -math.inf
        lprobs = F.log_softmax(logits, -1)
    drawn = len(tokens) - 1 if forced else len(tokens)
    return float(sum(lprobs[t, tokens[t]] for t in range(drawn)))


def lm_batch(ids, pad=1, eos=2, word=4):
    """Language-model sentences of one word (their references; the tests'
    sentences are all on-policy)."""
    n = len(ids)
    return {"id": torch.tensor(ids), "nsentences": n, "ntokens": 2 * n,
            "net_input": {"src_tokens": torch.tensor([[eos, word]] * n), "src_lengths": torch.full((n,), 2)},
            "target": torch.tensor([[word, eos]] * n)}


@pytest.fixture(scope="module")
def lm(tiny_lm_data_bin, teachers):
    """A random student of TINY_LM (far from its teacher), on-policy for every
    sentence, samples of at most 3 tokens."""
    def make(*flags):
        task, model, criterion = distill(tiny_lm_data_bin, teachers["lm"], "--distill-on-policy", "1",
                                         "--distill-max-len-a", "0", "--distill-max-len-b", "3", *flags,
                                         arch=TINY_LM, task="language_modeling")
        torch.manual_seed(5)
        for parameter in model.parameters():
            parameter.data.normal_(0, 0.2)
        model.train()
        return task, model, criterion
    return make


def source_of(batch, row, pad):
    tokens = batch["net_input"]["src_tokens"][row]
    return tokens[tokens.ne(pad)]


@pytest.mark.parametrize("beta,tau,topk,alpha", [(0.0, 1.0, 0, 0), (0.5, 2.0, 10, 0.5), (1.0, 1.0, 0, 0),
                                                 (0.2, 1.0, 3, 0)])
def test_on_policy_loss_is_the_divergence_along_the_sample(toy_data_bin, teachers, batch, monkeypatch,
                                                           beta, tau, topk, alpha):
    """Translation, --distill-on-policy 1: draw_continuations patched to
    give each sentence a sequence y (of 1 to 5 tokens, some with a forced
    EOS); loss and gradients are sum_t D_beta(T(.|y<t, x)||S(.|y<t, x)) by
    full forwards of float64 copies, each sentence alone, unpadded (plus
    alpha x fairseq's label-smoothed loss of the references)."""
    task, model, criterion = distill(toy_data_bin, teachers["toy"], "--distill-beta", repr(beta),
                                     "--distill-temperature", tau, "--distill-topk", topk,
                                     "--distill-on-policy", "1", "--distill-max-len-a", "0.5",
                                     "--distill-max-len-b", "4", "--distill-alpha", alpha,
                                     "--label-smoothing", "0.1")
    dictionary = task.target_dictionary
    generator = torch.Generator().manual_seed(7)
    rows = {}
    for i in batch["id"].tolist():
        length = int(torch.randint(0, 5, (), generator=generator))
        rows[i] = (torch.randint(4, len(dictionary), (length,), generator=generator).tolist()
                   + [dictionary.eos()], length % 2 == 1)
    calls = []
    drawing(monkeypatch, batch, rows, dictionary.pad(), calls)
    model.train()
    loss, _, log = criterion(model, batch)
    loss.backward()
    assert calls == [(batch["id"].tolist(), 0.5, 4)]
    student64, teacher64 = float64(model), float64(load_plain(teachers["toy"], task))
    expected = sum(sequence_d_beta(student64, teacher64, source_of(batch, row, dictionary.pad()),
                                   rows[i][0], beta, tau, topk)
                   for row, i in enumerate(batch["id"].tolist()))
    if alpha:
        expected = expected + alpha * LabelSmoothedCrossEntropyCriterion(task, False, 0.1)(student64, batch)[0]
    expected.backward()
    assert relative_error(loss, expected) < LOSS_RTOL
    assert relative_error(parameter_grads(model), parameter_grads(student64)) < GRAD_RTOL
    assert log["distill_on_policy_sentences"] == batch["nsentences"]
    assert log["distill_sample_tokens"] == log["distill_positions"] == sum(len(t) for t, _ in rows.values())


def enumerated_gradient(task, model, criterion, batch, source, max_len, beta, tau, monkeypatch, teacher):
    """For every outcome y of at most max_len tokens: the criterion's loss
    and gradient with y as the sample, and S(y); then the exact objective
    E_{y ~ sg(S)} sum_t D_beta(y) and its gradient by float64 autograd."""
    dictionary = task.target_dictionary
    banned = (dictionary.pad(), dictionary.bos())
    student64, teacher64 = float64(model), float64(load_plain(teacher, task))
    rows = outcomes(dictionary, max_len)
    weights = torch.tensor([math.exp(sequence_log_prob(student64, source, tokens, forced, banned))
                            for tokens, forced in rows], dtype=torch.float64)
    ours_loss, ours_grad = 0.0, 0.0
    for weight, row in zip(weights, rows):
        drawing(monkeypatch, batch, {int(batch["id"][0]): row}, dictionary.pad())
        model.zero_grad()
        loss, _, _ = criterion(model, batch)
        loss.backward()
        ours_loss = ours_loss + float(weight) * float(loss)
        ours_grad = ours_grad + weight * parameter_grads(model)
    objective = sum(weight * sequence_d_beta(student64, teacher64, source, tokens, beta, tau)
                    for weight, (tokens, _) in zip(weights, rows))
    objective.backward()
    return weights, ours_loss, ours_grad, objective, parameter_grads(student64)


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_language_model_on_policy_gradient_is_that_of_the_enumerated_objective(lm, monkeypatch, beta):
    """Every sample of at most 3 tokens of the tiny LM (5 words and EOS: 31):
    the criterion's per-sample gradients weighted by S(y) (detached) sum to
    the gradient of E_{y ~ sg(S)}[sum_t D_beta(y)], computed in float64."""
    task, model, criterion = lm("--distill-beta", repr(beta), "--distill-temperature", "1.5")
    weights, ours_loss, ours_grad, objective, expected_grad = enumerated_gradient(
        task, model, criterion, lm_batch([0]), None, 3, beta, 1.5, monkeypatch, criterion.teacher.path)
    assert len(weights) == 31 and math.isclose(float(weights.sum()), 1.0, rel_tol=1e-9)  # complete
    assert float(weights.max()) < 0.5  # no outcome dominates
    assert math.isclose(ours_loss, float(objective), rel_tol=LOSS_RTOL)
    assert relative_error(ours_grad, expected_grad) < GRAD_RTOL


def test_translation_on_policy_gradient_is_that_of_the_enumerated_objective(toy_data_bin, teachers,
                                                                            monkeypatch):
    """Every sample of at most 2 tokens (EOS, or a word and the forced EOS:
    62 outcomes) for one source sentence of the toy translation model."""
    task, model, criterion = distill(toy_data_bin, teachers["toy"], "--distill-beta", "0.5",
                                     "--distill-on-policy", "1", "--distill-max-len-a", "0",
                                     "--distill-max-len-b", "2")
    torch.manual_seed(8)
    for parameter in model.parameters():
        parameter.data.normal_(0, 0.3)
    model.train()
    one = sentences(task, [3])
    source = source_of(one, 0, task.target_dictionary.pad())
    weights, ours_loss, ours_grad, objective, expected_grad = enumerated_gradient(
        task, model, criterion, one, source, 2, 0.5, 1.0, monkeypatch, teachers["toy"])
    assert len(weights) == 62 and math.isclose(float(weights.sum()), 1.0, rel_tol=1e-9)
    assert math.isclose(ours_loss, float(objective), rel_tol=LOSS_RTOL)
    assert relative_error(ours_grad, expected_grad) < GRAD_RTOL


def test_criterion_samples_sequences_with_the_students_probabilities(lm, monkeypatch):
    """Unpatched sampling: 4000 on-policy sentences in one batch; the
    outcome counts against S(y) by a chi-square test (the draws are seeded
    by the batch: the same counts every run)."""
    task, model, criterion = lm("--distill-beta", "0.5")
    dictionary = task.target_dictionary
    drawn = []
    real_draw = distill_module.draw_continuations

    def recording(*args):
        samples, forced = real_draw(*args)
        drawn.append((samples, forced))
        return samples, forced

    monkeypatch.setattr(distill_module, "draw_continuations", recording)
    with torch.no_grad():
        criterion(model, lm_batch(list(range(4000))))
    (samples, forced), = drawn
    rows = outcomes(dictionary, 3)
    index = {tuple(tokens): k for k, (tokens, _) in enumerate(rows)}
    counts = torch.zeros(len(rows))
    for sample, sample_forced in zip(samples.tolist(), forced.tolist()):
        tokens = sample[:sample.index(dictionary.eos()) + 1]
        k = index[tuple(tokens)]
        assert sample_forced[len(tokens) - 1] == rows[k][1]
        counts[k] += 1
    student64 = float64(model)
    banned = (dictionary.pad(), dictionary.bos())
    expected = torch.tensor([math.exp(sequence_log_prob(student64, None, tokens, is_forced, banned))
                             for tokens, is_forced in rows]) * len(samples)
    # bins expected below 5 times pooled, as the test needs
    small = expected < 5
    observed = torch.cat([counts[~small], counts[small].sum().view(1)])
    wanted = torch.cat([expected[~small], expected[small].sum().view(1)])
    assert int((~small).sum()) >= 10
    wanted = wanted * observed.sum() / wanted.sum()  # chisquare wants equal totals (float rounding)
    p_value = stats.chisquare(observed.numpy(), wanted.numpy()).pvalue
    assert p_value > 1e-3, (p_value, counts, expected)


# ---------------------------------------------------------------- 7. on-policy fraction


def test_on_policy_sentences_are_drawn_per_sentence(toy_data_bin, teachers, monkeypatch):
    """Each sentence's decision is sentence_uniforms(seed, update, id) <
    lambda: the same in any batch at one update, drawn anew at another; over
    many ids the fraction is lambda (5 standard deviations); the criterion
    samples exactly those sentences."""
    task, model, criterion = distill(toy_data_bin, teachers["toy"], "--distill-on-policy", "0.3",
                                     "--distill-max-len-b", "3")
    lam, n = 0.3, 200_000

    def decisions(ids, update):
        criterion.set_num_updates(update)
        chosen = criterion.on_policy_sentences({"id": torch.tensor(ids)})
        return dict(zip(ids, chosen.tolist()))

    first, second = decisions([4, 17, 9, 30, 6], 7), decisions([30, 2, 4, 11, 17, 40], 7)
    assert all(first[i] == second[i] for i in (4, 17, 30))
    many = criterion.on_policy_sentences({"id": torch.arange(n)})
    assert abs(float(many.double().mean()) - lam) < 5 * math.sqrt(lam * (1 - lam) / n)
    assert torch.equal(many, sentence_uniforms(criterion.seed, 7, torch.arange(n)) < lam)
    criterion.set_num_updates(8)
    other = criterion.on_policy_sentences({"id": torch.arange(n)})
    changed = float((other != many).double().mean())  # independent draws: 2 lambda (1 - lambda)
    assert abs(changed - 2 * lam * (1 - lam)) < 5 * math.sqrt(0.42 * 0.58 / n)

    # in the forward: two overlapping batches at update 8, the same choice
    drawn = []
    real_draw = distill_module.draw_continuations

    def recording(model_, net_input, order, *args):
        drawn.append(order)
        return real_draw(model_, net_input, order, *args)

    monkeypatch.setattr(distill_module, "draw_continuations", recording)
    chosen = {}
    for ids in (list(range(0, 40)), list(range(20, 60))):
        sample = sentences(task, ids)
        with torch.no_grad():
            _, _, log = criterion(model, sample)
        rows = drawn.pop().tolist()
        assert log["distill_on_policy_sentences"] == len(rows)
        picked = {int(sample["id"][row]) for row in rows}  # the collater sorts by length
        for i in ids:
            assert chosen.setdefault(i, i in picked) == (i in picked), i
        assert picked == {i for i in ids if other[i]}
    assert 0 < sum(chosen.values()) < 60


# ---------------------------------------------------------------- 8, 9. the teacher


def test_teacher_is_frozen_outside_the_module_tree(toy_data_bin, teachers, batch):
    task, model, criterion = distill(toy_data_bin, teachers["toy"], "--distill-on-policy", "0.5",
                                     "--distill-alpha", "0.5")
    teacher = criterion.teacher.model
    assert list(criterion.parameters()) == [] and criterion.state_dict() == {}
    assert not any(parameter.requires_grad for parameter in teacher.parameters())
    before = copy.deepcopy(teacher.state_dict())
    criterion.train()
    model.train()
    teacher.train()  # whatever switched it on, the criterion uses it in eval mode
    loss, _, _ = criterion(model, batch)
    loss.backward()
    assert not teacher.training
    assert all(parameter.grad is None for parameter in teacher.parameters())
    assert all(torch.equal(value, before[key]) for key, value in teacher.state_dict().items())
    assert criterion.teacher.follow(copy.deepcopy(model).half()) is teacher
    assert {parameter.dtype for parameter in teacher.parameters()} == {torch.float16}
    criterion.teacher.follow(model)
    assert {parameter.dtype for parameter in teacher.parameters()} == {torch.float32}


@pytest.fixture(scope="module")
def student_run(toy_data_bin, teachers, tmp_path_factory):
    """4 fairseq-train updates of a student of other shapes (STUDENT_SHAPE,
    dropout 0.1) on a copy of the toy teacher: word-level, on-policy (beta
    0.5, half the sentences) and alpha. Returns (teacher copy, its SHA-256
    before, save dir)."""
    root = tmp_path_factory.mktemp("student")
    teacher = root / "teacher.pt"
    shutil.copy2(teachers["toy"], teacher)
    before = sha256(teacher)
    save_dir = root / "student"
    run_cli("fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", "--task", "translation",
            *TINY_TRANSFORMER, *STUDENT_SHAPE, "--dropout", "0.1", "--criterion", "distill",
            "--teacher-path", teacher, "--distill-beta", "0.5", "--distill-on-policy", "0.5",
            "--distill-alpha", "0.5", "--label-smoothing", "0.1", "--lr", "0.005", *TRAIN,
            "--max-update", "4", "--save-dir", save_dir, "--log-format", "json", "--log-interval", "1")
    return teacher, before, save_dir


def test_training_leaves_the_teacher_file_and_keeps_it_out_of_the_checkpoint(toy_data_bin, student_run):
    teacher, before, save_dir = student_run
    assert sha256(teacher) == before
    state = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert state["optimizer_history"][-1]["num_updates"] == 4
    assert not state["criterion"]
    _, student, _ = build(toy_data_bin, "--criterion", "cross_entropy",
                          arch=[*TINY_TRANSFORMER, *STUDENT_SHAPE])
    shapes = {key: tuple(value.shape) for key, value in student.state_dict().items()}
    assert {key: tuple(value.shape) for key, value in state["model"].items()} == shapes
    assert shapes["encoder.layers.0.fc1.weight"] == (32, 32)  # not the teacher's (64, 32)
    assert state["task_state"]["fairseq_ot_teacher"] == {"path": os.path.abspath(teacher), "sha256": before}


def test_student_checkpoint_translates_without_its_teacher(toy_data_bin, student_run):
    teacher, _, save_dir = student_run
    away = teacher.with_suffix(".away")
    teacher.rename(away)
    try:
        _, output = run_cli("fairseq-generate", toy_data_bin, "--user-dir", USER_DIR, "--task", "translation",
                            "--path", save_dir / "checkpoint_last.pt", "--gen-subset", "test", "--beam", "2",
                            "--max-len-b", "10", "--batch-size", "16", "--cpu", *EVERY_BATCH)
    finally:
        away.rename(teacher)
    ids = sorted(int(line.split("\t")[0][2:]) for line in output.splitlines() if line.startswith("H-"))
    assert ids == list(range(37))


def test_teacher_of_a_cot_checkpoint_is_its_generator(toy_data_bin, teachers, batch, tmp_path):
    """The teacher read from a mediator_translation checkpoint (cot) computes
    what the plain checkpoint extract_generator writes of it computes."""
    state = torch.load(teachers["cot"], map_location="cpu", weights_only=False)
    assert {key.split(".")[0] for key in state["model"]} == {"generator", "mediator"}
    task, _, criterion = distill(toy_data_bin, teachers["cot"])
    extract_generator(teachers["cot"], tmp_path / "generator.pt")
    plain = load_plain(tmp_path / "generator.pt", task)
    teacher = criterion.teacher.model
    # the same weights, bit for bit; their outputs equal up to the matrix
    # products' rounding, which depends on the buffers' memory alignment
    assert teacher.state_dict().keys() == plain.state_dict().keys()
    assert all(torch.equal(value, plain.state_dict()[key]) for key, value in teacher.state_dict().items())
    with torch.no_grad():
        ours = teacher(**batch["net_input"])[0]
        assert torch.allclose(ours, plain(**batch["net_input"])[0], rtol=1e-5, atol=1e-5)
        untrained = build(toy_data_bin, "--criterion", "cross_entropy")[1].eval()
        assert not torch.allclose(ours, untrained(**batch["net_input"])[0], atol=1e-3)


# ---------------------------------------------------------------- 10. bad input


@pytest.mark.parametrize("case", ["missing", "damaged", "other dictionaries", "other task kind",
                                  "not distill", "topk above the vocabulary", "beta above 1"])
def test_bad_teacher_or_flag_is_one_line_and_writes_nothing(toy_data_bin, teachers, tmp_path, case):
    toy = teachers["toy"]
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(toy.read_bytes()[:100_000])
    missing = tmp_path / "no_such.pt"
    distill_flags = ["--criterion", "distill", "--teacher-path"]
    flags, error = {
        "missing": ([*distill_flags, missing], f"--teacher-path {missing}: no such file"),
        "damaged": ([*distill_flags, damaged], f"cannot load checkpoint {damaged}: it is truncated"),
        "other dictionaries": ([*distill_flags, teachers["seqkd"]],
                               f"--teacher-path {teachers['seqkd']} was trained with another source "
                               f"dictionary"),
        "other task kind": ([*distill_flags, teachers["lm"]],
                            f"--teacher-path {teachers['lm']}: a language_modeling checkpoint, not a model "
                            f"of the student's task kind translation"),
        "not distill": (["--criterion", "label_smoothed_cross_entropy", "--teacher-path", toy],
                        f"unrecognized arguments: --teacher-path {toy}"),
        "topk above the vocabulary": ([*distill_flags, toy, "--distill-topk", "65"],
                                      "--distill-topk must be in [0, 64] (the target vocabulary), got 65"),
        "beta above 1": ([*distill_flags, toy, "--distill-beta", "1.5"],
                         f"--distill-beta must be 0, 1 or in [{MIN_DISTILL_BETA:g}, 1), got 1.5"),
    }[case]
    save_dir = tmp_path / "save"
    code, output = run_cli("fairseq-train", toy_data_bin, "--user-dir", USER_DIR, "--cpu", "--task",
                           "translation", *TINY_TRANSFORMER, *flags, "--lr", "0.001", *TRAIN,
                           "--max-update", "2", "--save-dir", save_dir, check=False)
    last = output.rstrip().splitlines()[-1]
    assert code == 2, output[-3000:]
    assert last.startswith(f"fairseq-train: error: {error}"), last
    assert "Traceback" not in output
    assert not save_dir.exists() or list(save_dir.iterdir()) == []


@pytest.mark.parametrize("flags,message", [
    (["--distill-beta", "1e-30"], f"--distill-beta must be 0, 1 or in [{MIN_DISTILL_BETA:g}, 1), got 1e-30"),
    (["--distill-beta", "-0.1"], f"--distill-beta must be 0, 1 or in [{MIN_DISTILL_BETA:g}, 1), got -0.1"),
    (["--distill-on-policy", "1.5"], "--distill-on-policy must be in [0, 1], got 1.5"),
    (["--distill-on-policy", "-0.1"], "--distill-on-policy must be in [0, 1], got -0.1"),
    (["--distill-temperature", "0"], "--distill-temperature must be finite and > 0, got 0.0"),
    (["--distill-temperature", "inf"], "--distill-temperature must be finite and > 0, got inf"),
    (["--distill-topk", "5", "--distill-beta", "1"],
     "--distill-topk with --distill-beta 1: KL[S||T] is infinite"),
], ids=["beta_tiny", "beta_negative", "lambda_high", "lambda_negative", "tau_zero", "tau_inf", "topk_beta_1"])
def test_out_of_range_settings_are_refused_naming_the_flag(toy_data_bin, teachers, flags, message):
    with pytest.raises(FlagError) as error:
        distill(toy_data_bin, teachers["toy"], *flags)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("task,plain", [("mediator_translation", "translation"),
                                        ("mediator_language_modeling", "language_modeling")])
def test_a_mediator_task_is_refused_naming_the_plain_one(toy_data_bin, tiny_lm_data_bin, teachers, task, plain):
    """Named by the task's registered name: fairseq's language_modeling (and
    the mediator task over it) has no task.cfg, where reading cfg._name
    raised AttributeError."""
    data_bin, arch = (toy_data_bin, TINY_TRANSFORMER) if plain == "translation" else (tiny_lm_data_bin, TINY_LM)
    mediator = ["--mediator-embed-dim", "8", "--mediator-hidden-dim", "8", "--mediator-dropout", "0"]
    with pytest.raises(FlagError, match=rf"^--criterion distill trains a plain model: use --task {plain}, "
                                        rf"not {task}$"):
        distill(data_bin, teachers["toy"], *mediator, arch=arch, task=task)


# ---------------------------------------------------------------- 11. mixed precision


def replaying(monkeypatch):
    """Patch draw_continuations to give every later call the first call's
    samples: a float16 logit can move a draw, and one other token changes
    the rest of the sample."""
    real_draw, drawn = distill_module.draw_continuations, []

    def replay(*args):
        drawn.append(drawn[0] if drawn else real_draw(*args))
        return drawn[-1]

    monkeypatch.setattr(distill_module, "draw_continuations", replay)
    return drawn


FLAGS_11 = ["--distill-beta", "0.5", "--distill-on-policy", "0.5", "--distill-alpha", "0.5",
            "--label-smoothing", "0.1", "--distill-topk", "10", "--distill-temperature", "2"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cpu_autocast_loss_is_close_to_float32(toy_data_bin, teachers, batch, monkeypatch, dtype):
    """torch.autocast on CPU: matrix products in float16/bfloat16, the
    divergence and its mixture in float32; relative 2e-2 of float32's loss
    (bfloat16 keeps 8 significant bits), finite gradients."""
    _, model, criterion = distill(toy_data_bin, teachers["toy"], *FLAGS_11)
    drawn = replaying(monkeypatch)
    model.train()
    with torch.no_grad():
        full, _, _ = criterion(model, batch)
    with torch.autocast("cpu", dtype=dtype):
        low, _, log = criterion(model, batch)
    low.backward()
    assert len(drawn) == 2 and low.dtype == torch.float32
    assert math.isclose(float(low), float(full), rel_tol=2e-2), (float(low), float(full))
    assert bool(torch.isfinite(parameter_grads(model)).all())


def test_half_student_loss_is_close_to_float32(toy_data_bin, teachers, batch, monkeypatch):
    """A float16 student (--memory-efficient-fp16 on CPU): the teacher follows
    it to float16, the divergence is float32; relative 1e-3 of float32's."""
    _, model, criterion = distill(toy_data_bin, teachers["toy"], *FLAGS_11)
    replaying(monkeypatch)
    model.train()
    with torch.no_grad():
        full, _, _ = criterion(model, batch)
        half, _, _ = criterion(model.half(), batch)
    assert next(criterion.teacher.model.parameters()).dtype == torch.float16
    assert half.dtype == torch.float32
    assert math.isclose(float(half), float(full), rel_tol=1e-3), (float(half), float(full))


# ---------------------------------------------------------------- 12. sequence-level KD data


# fairseq's beam search caps a batch's outputs at a x (its longest source) + b:
# with a = 0 each sentence's output is its own, whatever the batches
MAX_LEN_A, MAX_LEN_B = 0, 25


def generate_train(prepared, teacher):
    """fairseq-generate's beam-5 outputs of the teacher on the train split,
    BPE pieces as they are (no --remove-bpe), by sentence id."""
    _, output = run_cli("fairseq-generate", prepared / "data-bin", "--user-dir", USER_DIR,
                        "--task", "translation",
                        "--path", teacher, "--gen-subset", "train", "--beam", "5", "--lenpen", "1",
                        "--max-len-a", MAX_LEN_A, "--max-len-b", MAX_LEN_B, "--batch-size", "64", "--cpu",
                        *EVERY_BATCH)
    hypotheses = {}
    for line in output.splitlines():
        if line.startswith("H-"):
            key, _, text = (line.split("\t") + [""])[:3]
            hypotheses[int(key[2:])] = text
    return [hypotheses[i] for i in sorted(hypotheses)]


def files(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def test_sequence_kd_targets_are_the_teachers_beam_outputs_and_resume(prepared, teachers, tmp_path,
                                                                      monkeypatch, capsys):
    teacher = teachers["seqkd"]
    translated = []
    real_translate = sequence_kd._translate

    def recording(task, model, generator, dataset, ids, *args):
        translated.append(list(ids))
        return real_translate(task, model, generator, dataset, ids, *args)

    monkeypatch.setattr(sequence_kd, "_translate", recording)
    out = tmp_path / "kd"
    lengths = dict(max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B, chunk_size=30)
    assert sequence_kd.build_sequence_kd(prepared, teacher, out, **lengths, say=lambda _: None) == 80
    assert translated == [list(range(0, 30)), list(range(30, 60)), list(range(60, 80))]
    expected = generate_train(prepared, teacher)
    assert len(expected) == 80 and len(set(expected)) > 10
    targets = (out / "bpe" / "train.tgt").read_text().splitlines()
    assert targets == expected
    # the binarized targets read back through the dictionary
    dictionary = Dictionary.load(str(out / "data-bin" / "dict.tgt.txt"))
    binary = data_utils.load_indexed_dataset(str(out / "data-bin" / "train.src-tgt.tgt"), dictionary)
    assert [dictionary.string(binary[i]) for i in range(len(binary))] == expected
    # everything else is the original's, byte for byte
    original, new = files(prepared), files(out)
    changed = {"bpe/train.tgt", "data-bin/train.src-tgt.tgt.bin", "data-bin/train.src-tgt.tgt.idx",
               "prepared.json", "data-bin/preprocess.log"}
    assert set(new) == set(original)
    for name in set(original) - changed:
        assert new[name] == original[name], name
    assert not sequence_kd.chunk_folder(out).exists()
    stamp = json.loads((out / "prepared.json").read_text())["sequence_kd"]
    assert stamp["teacher_sha256"] == sha256(teacher) and stamp["beam"] == 5 and stamp["max_len_b"] == MAX_LEN_B

    # stopped after its second chunk; the last chunk written then lost
    resumed = tmp_path / "resumed"
    said = []

    def stop_after_two(message):
        said.append(message)
        if len(said) == 2:
            raise KeyboardInterrupt

    translated.clear()
    with pytest.raises(KeyboardInterrupt):
        sequence_kd.build_sequence_kd(prepared, teacher, resumed, **lengths, say=stop_after_two)
    chunks = sequence_kd.chunk_folder(resumed)
    assert sorted(path.name for path in chunks.iterdir()) == ["00000.txt", "00001.txt", "settings.json"]
    assert not resumed.exists()
    (chunks / "00001.txt").unlink()
    translated.clear()
    sequence_kd.build_sequence_kd(prepared, teacher, resumed, **lengths, say=lambda _: None)
    assert translated == [list(range(30, 60)), list(range(60, 80))]
    # the same folder (but for the paths in prepared.json and fairseq-preprocess's log)
    again, own = files(resumed), {"prepared.json", "data-bin/preprocess.log"}
    assert set(again) == set(new)
    assert all(again[name] == new[name] for name in set(new) - own)

    # an existing output is refused in one line, untouched
    line = one_line_error(capsys, build_seqkd.main, [str(prepared), str(teacher), str(out)])
    assert line.endswith(f"error: {out} exists: choose another output folder")
    assert files(out) == new


def test_sequence_kd_shards_share_one_chunk_folder_of_one_teacher(prepared, teachers, tmp_path, capsys):
    """Two shards (run one after the other here) translate disjoint chunks;
    the second writes the folder, equal to an unsharded build's; a chunk
    folder of other settings is refused."""
    teacher, lengths = teachers["seqkd"], dict(max_len_a=MAX_LEN_A, max_len_b=MAX_LEN_B, chunk_size=30)
    chunks, out = tmp_path / "chunks", tmp_path / "kd"
    said = []
    assert sequence_kd.build_sequence_kd(prepared, teacher, out, **lengths, chunks_dir=chunks,
                                         shard=(1, 2), say=said.append) is None
    assert sorted(path.name for path in chunks.glob("*.txt")) == ["00001.txt"] and not out.exists()
    assert "1/2 done; 2 chunks of other shards missing (first 0)" in said[-1]
    argv = [str(prepared), str(teacher), str(out), "--max-len-a", str(MAX_LEN_A), "--max-len-b",
            str(MAX_LEN_B), "--chunk-size", "30", "--chunks-dir", str(chunks), "--shard", "0/2"]
    build_seqkd.main(argv)
    assert "wrote" in capsys.readouterr().err
    assert sorted(path.name for path in chunks.glob("*.txt")) == ["00000.txt", "00001.txt", "00002.txt"]
    assert (out / "bpe" / "train.tgt").read_text().splitlines() == generate_train(prepared, teacher)

    line = one_line_error(capsys, build_seqkd.main, [*argv[:2], str(tmp_path / "kd2"), *argv[3:], "--beam", "2"])
    assert line.endswith(f"error: {chunks} holds chunks made with other settings (beam 5 -> 2): "
                         f"remove it or choose another chunk folder")
    with pytest.raises(SystemExit) as exit_info:
        build_seqkd.main([*argv[:-1], "2/2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "argument --shard: expected K/N with 0 <= K < N, got '2/2'")
