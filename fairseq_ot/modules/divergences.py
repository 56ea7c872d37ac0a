"""KL and generalized Jensen-Shannon divergences between next-token
distributions, in float32 and in log space.

JS_pi[P||Q] = pi KL[P||M] + (1 - pi) KL[Q||M],  M = pi P + (1 - pi) Q
(Huszar 2015, "How (not) to Train your Generative Model"); pi = 1/2 is the
Jensen-Shannon divergence that CoT minimizes (Lu et al., ICML 2019)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from fairseq_ot.modules.packed_positions import unpack
from fairseq_ot.modules.token_prediction import mask_banned


def masked_log_softmax(logits: Tensor, banned=(), dtype=torch.float32) -> Tensor:
    """Log-probabilities in float32 (or `dtype`) over the tokens a sequence
    can contain: `banned` symbols (pad, BOS) get none, matching what the
    sampler draws."""
    return F.log_softmax(mask_banned(logits.to(dtype), banned), dim=-1)


class _StepKL(torch.autograd.Function):
    """KL[p_t || q_t] from p's logits, q constant; the gradient over the
    logits, p (log p - log q - KL), is formed in the forward pass and is the
    one [..., V] tensor kept for backward (autograd through log-softmax,
    exp, difference and product kept four)."""

    @staticmethod
    def forward(ctx, logits_p, lprobs_q, banned):
        lprobs_p = masked_log_softmax(logits_p, banned)
        probs_p = lprobs_p.exp()
        log_ratio = lprobs_p.sub_(lprobs_q)
        # autocast would run vecdot, a matrix product to it, in float16/bfloat16
        with torch.autocast(device_type=logits_p.device.type, enabled=False):
            kl = torch.linalg.vecdot(probs_p, log_ratio)
        ctx.save_for_backward(log_ratio.sub_(kl.unsqueeze(-1)).mul_(probs_p))
        ctx.logits_dtype = logits_p.dtype
        return kl

    @staticmethod
    def backward(ctx, grad_kl):
        (grad,) = ctx.saved_tensors
        return (grad * grad_kl.unsqueeze(-1)).to(ctx.logits_dtype), None, None


def step_kl(logits_p: Tensor, lprobs_q: Tensor, banned=()) -> Tensor:
    """KL[p_t || q_t] = sum_v p_t(v) (log p_t(v) - log q_t(v)) at every step,
    in float32, with p_t = softmax of `logits_p` over the tokens that are not
    `banned` (as `masked_log_softmax`) and q_t a constant: [..., V] logits
    (any float dtype; [B, T, V] or packed positions [N, V]) and [..., V]
    finite float32 log-probabilities (see token_prediction.BANNED_LOG_PROB)
    -> [...]. The gradient flows to the logits only,
    d KL_t / d z_t(v) = p_t(v) (log p_t(v) - log q_t(v) - KL_t).
    A sequence's stepwise KL is the masked sum over t."""
    return _StepKL.apply(logits_p, lprobs_q.detach(), tuple(banned))


def score_function_surrogate(step_losses: Tensor, token_lprobs: Tensor, mask: Tensor) -> Tensor:
    """Score-function (REINFORCE) term, with reward-to-go, of the gradient of
    an expected sum of per-step losses along sequences drawn from a model G.

    For losses L_t(s_<t) of the prefix s_<t (and of G's parameters), the
    exact gradient of E_{s~G}[sum_t L_t] is

        grad E[sum_t L_t] = E_{s~G}[sum_t grad L_t + sum_t' R_t' grad log G(s_t' | s_<t')],
        R_t' = sum_{t > t'} L_t,

    because grad E_{s_<t}[L_t] = E[grad L_t + L_t grad log G(s_<t)] with
    log G(s_<t) = sum_{t' < t} log G(s_t' | s_<t'): each drawn token carries
    the losses of the later steps (the reward-to-go); its own step's loss,
    whose prefix does not contain it, would add zero-mean noise only. Per
    sequence, this returns the surrogate

        sum_t' m_t' sg(R_t') (log G(s_t' | s_<t') - sg(log G(s_t' | s_<t'))),
        R_t' = sum_{t > t'} m_t L_t,

    zero in value, whose gradient averaged over samples of G is the second
    term (sg: stop-gradient; m_t: the steps drawn from G, neither padding nor
    a token forced by a length limit, which G did not choose).

    Parameters
    ----------
    step_losses : Tensor, shape (B, T)
        L_t of each step (e.g. `step_kl`); used as a constant.
    token_lprobs : Tensor, shape (B, T)
        log G(s_t | s_<t) of the drawn tokens, with gradient.
    mask : BoolTensor, shape (B, T)
        m_t, the steps drawn from G.

    Returns
    -------
    surrogate : Tensor, shape (B,)
        zeros whose gradient is sum_t' m_t' R_t' grad log G(s_t' | s_<t').

    References
    ----------
    Lu et al. (ICML 2019), "CoT: Cooperative Training for Generative Modeling
    of Discrete Data": the estimator family
    grad J_g^gamma = E_{s~G} sum_t grad[gamma sg(L(s_t)) log G(s_t) + L(s_t)]
    with s_t the prefix; gamma = 1 is this surrogate plus the pathwise term.
    Williams (1992), "Simple statistical gradient-following algorithms for
    connectionist reinforcement learning", for the score function.
    """
    masked = (step_losses * mask).detach()
    later = F.pad(masked[:, 1:], (0, 1))  # R_t' excludes step t' itself
    to_go = later.flip(-1).cumsum(-1).flip(-1)
    # log G - sg(log G): zero value, so the loss still reads as the KL
    score = to_go * (token_lprobs - token_lprobs.detach())
    return torch.where(mask, score, torch.zeros_like(score)).sum(-1)


def sequence_log_probs(lprobs: Tensor, tokens: Tensor, mask: Tensor, counted=None) -> Tensor:
    """log-probability of each sequence from its packed positions: lprobs
    [N, V] and tokens [N] at the True positions of `mask` [B, T] -> [B], the
    sum over the positions `counted` (default: all of `mask`'s)."""
    token_lprobs = unpack(lprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), mask)
    counted = mask if counted is None else counted
    return torch.where(counted, token_lprobs, torch.zeros_like(token_lprobs)).sum(-1)


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - e^x) for x < 0, to full relative precision at both ends:
    log(-expm1(x)) where e^x is near 1 (x > -log 2), log1p(-exp(x)) where
    it is small (Maechler 2012, "Accurately Computing `log(1 - exp(-|a|))`")."""
    near_zero = x > -math.log(2)
    # each branch evaluated only where it is accurate, so neither takes log(0)
    return torch.where(near_zero, torch.log(-torch.expm1(torch.where(near_zero, x, -1.0))),
                       torch.log1p(-torch.exp(torch.where(near_zero, -1.0, x))))


# The mediator estimate's data term divides the rounding error of float64
# sequence log-probabilities (2^-53 of |log Q(s)|: 1e-13 at a thousand nats)
# by pi: below 1e-4 of a one-nat estimate from pi = 1e-9 up.
MIN_MEDIATOR_PI = 1e-9


def js_pi_terms(log_q_data, log_m_data, log_q_samples, log_m_samples, pi):
    """Per-sequence terms of the mediator estimate of JS_pi[P||Q]:

        JS_pi = pi E_P[log(P / M)] + (1 - pi) E_Q[log(Q / M)],
        P / M = (1 - (1 - pi) Q / M) / pi   when M = pi P + (1 - pi) Q,

    so both expectations need only log Q and log M of sequences, data for the
    first, samples of Q for the second.

    Parameters
    ----------
    log_q_data, log_m_data : Tensor, shape (B,)
        log Q(s) and log M(s) of data sequences.
    log_q_samples, log_m_samples : Tensor, shape (S,)
        the same of samples of Q.
    pi : float
        the mixture weight, in [MIN_MEDIATOR_PI, 1).

    Returns
    -------
    data_terms : Tensor, shape (B,)
        pi log(P/M) per data sequence, computed as
        pi (log(1 - e^x) - log pi), x = log(1 - pi) + log Q - log M: log1mexp
        keeps 1 - (1 - pi) Q/M exact both where it is about pi P/M (pi near
        0) and near 1 (pi near 1), where it would round to 0 or to 1.
    sample_terms : Tensor, shape (S,)
        (1 - pi) log(Q/M) per sample.

    In the input's dtype: near pi = 0, 1 - (1 - pi) Q/M = pi P/M comes from
    a difference of log-probabilities, whose rounding error, divided by pi,
    is the estimate's: feed float64. An imperfect mediator can make
    (1 - pi) Q/M >= 1: P/M is then clamped to 1e-8, keeping the log finite.
    """
    x = (math.log1p(-pi) + (log_q_data - log_m_data)).clamp(max=math.log1p(-1e-8 * pi))
    return pi * (log1mexp(x) - math.log(pi)), (1 - pi) * (log_q_samples - log_m_samples)


def _js_summands(log_q: Tensor, log_p: float, pi: float):
    """JS_pi[P||Q] / (pi (1 - pi)), entry by entry, and its derivative in
    log Q, for P(v) = exp(log_p) > 0 and M = pi P + (1 - pi) Q:

        loss(v) = (Q / pi) log(Q / M) + (P / (1 - pi)) log(P / M),
        grad(v) = (Q / pi) log(Q / M)       (P fixed; the P term's and the
                  mixture's derivatives cancel: d JS_pi / dQ = (1 - pi) log(Q/M)).

    Summed over v, loss is the definition divided by pi (1 - pi). Near
    pi = 0 log(Q/M) is about pi (1 - P/Q) and the Q terms, each about Q - P,
    add up to O(pi); near pi = 1 the same holds for log(M/P) and the P terms.
    A difference log Q - log M would keep only the rounding of the two logs,
    eps |log Q| (1e-6 in float32), of a ratio of size pi. So the ratio that
    is near 1 comes from log1p of its exact offset, M/Q = 1 + pi (P/Q - 1)
    or M/P = 1 + (1 - pi)(Q/P - 1), with relative error eps, and each
    summand loses only eps |P - Q|: the sum stays within float32's
    precision of the loss at every pi.

    log(Q/P) is clamped at log(pi) - 30: below it Q < e^-30 pi P, M is pi P
    and Q's own terms vanish (to e^-30 relative), as for Q = 0; the clamp
    keeps -inf or -1e30 log-probabilities finite and log(Q/P) - log(M/P)
    exact to 1e-5.

    Parameters
    ----------
    log_q : Tensor
        log Q(v), float32 or float64, any shape.
    log_p : float
        log P(v), the same for every entry.
    pi : float
        the mixture weight, in [MIN_TOKEN_PI, 1).

    Returns
    -------
    loss, grad : Tensor, the shape of log_q

    References
    ----------
    Huszar (2015), "How (not) to Train your Generative Model: Scheduled
    Sampling, Likelihood, Adversary?", for JS_pi and its limits.
    """
    log_q_over_p = (log_q - log_p).clamp(min=math.log(pi) - 30)
    if pi <= 0.5:
        log_q_over_m = -torch.log1p(pi * torch.expm1(-log_q_over_p))
        log_m_over_p = log_q_over_p - log_q_over_m
    else:
        log_m_over_p = torch.log1p((1 - pi) * torch.expm1(log_q_over_p))
        log_q_over_m = log_q_over_p - log_m_over_p
    grad = torch.exp(log_q_over_p + (log_p - math.log(pi))) * log_q_over_m
    return grad - (math.exp(log_p) / (1 - pi)) * log_m_over_p, grad


class _SmoothedTokenGJS(torch.autograd.Function):
    """JS_pi / (pi (1 - pi)) per position for a label-smoothed target, its
    gradient over the log-probabilities a by-product of the forward pass:
    only that [N, V] tensor waits for backward, where autograd through the
    summands would keep several."""

    @staticmethod
    def forward(ctx, lprobs, target, pi, label_smoothing):
        off_target = label_smoothing / (lprobs.size(-1) - 1)
        loss, grad = _js_summands(lprobs, math.log(off_target), pi)
        # the target column, summed above with P = off_target, replaced by P = 1 - smoothing
        index = target.unsqueeze(-1)
        target_loss, target_grad = _js_summands(lprobs.gather(-1, index),
                                                math.log1p(-label_smoothing), pi)
        ctx.save_for_backward(grad.scatter_(-1, index, target_grad))
        return loss.sum(-1) - loss.gather(-1, index).squeeze(-1) + target_loss.squeeze(-1)

    @staticmethod
    def backward(ctx, grad_loss):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.unsqueeze(-1), None, None, None


# Below this pi, 1/pi, by which the label-smoothed loss scales Q entry by
# entry, leaves float32's range (3.4e38).
MIN_TOKEN_PI = 1e-30


def token_js_pi(lprobs: Tensor, target: Tensor, pi: float, label_smoothing: float = 0.0) -> Tensor:
    """JS_pi[P_t||Q_t] / (pi (1 - pi)) per position, the token loss of `gjs`:
    P_t the one-hot (or label-smoothed) target and Q_t = exp(lprobs) the
    model, [N, V], [N] -> [N] float32. Divided by pi (1 - pi) it tends to
    KL[P||Q] as pi -> 0 and to KL[Q||P] as pi -> 1; computed already
    divided, it stays of order 1 at every pi.

    With label smoothing: `_js_summands` over V, in float32. With one-hot P,
    only Q(y) counts, in float64 ([N] values): the target's summands with
    P(y) = 1, plus the other tokens', where P = 0 and M = (1 - pi) Q, so
    (Q / pi) log(Q/M) = -Q log(1 - pi) / pi: -(1 - Q(y)) log(1 - pi) / pi in
    all. (The textbook KL[Q||M] = -(1 - Q(y)) log(1 - pi) + Q(y) (log Q(y) -
    log M(y)) in float32 rounded log Q(y) - log M(y), about -pi (1 - Q(y)) /
    Q(y), to 0: at pi = 1e-9 a loss (1 - Q(y)) nats per token too high, and
    a wrong gradient.) The label-smoothed loss keeps one [N, V] tensor, its
    gradient, for backward, where autograd through the textbook form kept
    four."""
    lprobs = lprobs.float()
    if label_smoothing > 0:
        return _SmoothedTokenGJS.apply(lprobs, target, pi, label_smoothing)
    log_q = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1).double()
    target_loss, _ = _js_summands(log_q, 0.0, pi)
    return (target_loss + torch.expm1(log_q) * (math.log1p(-pi) / pi)).float()


# log(beta) - 30 bounds the ratios `_mixture_summands` exponentiates: below
# this beta, exp of 30 - log(beta) leaves float32's range.
MIN_DISTILL_BETA = 1e-25


def _mixture_summands(log_q: Tensor, log_p: Tensor, beta: float):
    """JS_beta[P||Q] / (beta (1 - beta)) entry by entry, for P and Q both
    distributions given by log-probabilities (P may have zeros, as
    BANNED_LOG_PROB), and its exact partial derivative in log Q:

        loss(v) = (Q / beta) log(Q / M) + (P / (1 - beta)) log(P / M),
        grad(v) = (Q / beta) log(Q / M),     M = beta P + (1 - beta) Q.

    As `_js_summands` (which holds P constant), the ratio of the two that
    is near 1 comes from log1p of its exact offset, so each summand loses
    only eps |P - Q| in float32. log(Q/P) is clamped to [log(beta) - 30,
    30 - log(1 - beta)]: beyond either end one distribution's terms vanish
    to e^-30 of the other's (a zero P or Q is such an end), and exp of the
    clamped ratios stays finite."""
    log_q_over_p = (log_q - log_p).clamp(min=math.log(beta) - 30, max=30 - math.log1p(-beta))
    if beta <= 0.5:
        log_q_over_m = -torch.log1p(beta * torch.expm1(-log_q_over_p))
        log_m_over_p = log_q_over_p - log_q_over_m
    else:
        log_m_over_p = torch.log1p((1 - beta) * torch.expm1(log_q_over_p))
        log_q_over_m = log_q_over_p - log_m_over_p
    grad = torch.exp(log_q - math.log(beta)) * log_q_over_m
    return grad - torch.exp(log_p - math.log1p(-beta)) * log_m_over_p, grad


class _MixtureJS(torch.autograd.Function):
    """Scaled JS_beta per position from the student's log-probabilities, the
    teacher's constant; the gradient over log Q is formed in the forward
    pass and is the one [N, V] tensor kept for backward."""

    @staticmethod
    def forward(ctx, log_q, log_p, beta):
        # at the ends, the interior gradient's limits: Q - P and Q log(Q/P),
        # which differ from the KLs' partial derivatives by Q, the direction
        # the log-softmax that makes log Q cancels (and are exactly 0 at Q = P)
        if beta == 0:  # KL[P||Q]
            p = log_p.exp()
            loss, grad = p * (log_p - log_q), log_q.exp().sub_(p)
        elif beta == 1:  # KL[Q||P]
            loss = log_q.exp() * (log_q - log_p)
            grad = loss
        else:
            loss, grad = _mixture_summands(log_q, log_p, beta)
        ctx.save_for_backward(grad)
        return loss.sum(-1)

    @staticmethod
    def backward(ctx, grad_loss):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.unsqueeze(-1), None, None


def js_beta(student_lprobs: Tensor, teacher_lprobs: Tensor, beta: float) -> Tensor:
    """Generalized Jensen-Shannon divergence between a teacher T and a
    student S at every position, scaled to reach the two KLs at its ends:

        D_beta = JS_beta[T||S] / (beta (1 - beta)),
        JS_beta[T||S] = beta KL[T||M] + (1 - beta) KL[S||M],  M = beta T + (1 - beta) S,

    D_0 = KL[T||S] (forward, word-level KD) and D_1 = KL[S||T] (reverse),
    the limits of D_beta, which is continuous on [0, 1].

    Parameters
    ----------
    student_lprobs : Tensor, shape (..., V)
        log S, with gradient (float32 and float64 are kept, others become float32).
    teacher_lprobs : Tensor, shape (..., V)
        log T, a constant; zero probabilities as BANNED_LOG_PROB (top-k
        teachers), not -inf. With beta = 1 a zero of T where S is positive
        makes the loss about 1e30: top-k teachers need beta < 1.
    beta : float
        0, 1, or in [MIN_DISTILL_BETA, 1 - 1e-16].

    Returns
    -------
    loss : Tensor, shape (...)
        D_beta in nats; its gradient flows to `student_lprobs` only.

    References
    ----------
    Agarwal et al. (ICLR 2024), "On-Policy Distillation of Language Models:
    Learning from Self-Generated Mistakes" (GKD), for JSD(beta) between
    teacher and student; Huszar (2015) for JS_pi and its limits.
    """
    if student_lprobs.dtype not in (torch.float32, torch.float64):
        student_lprobs = student_lprobs.float()
    return _MixtureJS.apply(student_lprobs, teacher_lprobs.detach().to(student_lprobs.dtype), beta)
