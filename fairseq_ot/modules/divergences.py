"""KL and generalized Jensen-Shannon divergences between next-token
distributions, in float32 and in log space.

JS_pi[P||Q] = pi KL[P||M] + (1 - pi) KL[Q||M],  M = pi P + (1 - pi) Q
(Huszar 2015, "How (not) to Train your Generative Model"); pi = 1/2 is the
Jensen-Shannon divergence that CoT minimizes (Lu et al., ICML 2019)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from fairseq_ot.modules.token_prediction import mask_banned


def masked_log_softmax(logits: Tensor, banned=()) -> Tensor:
    """Log-probabilities in float32 over the tokens a sequence can contain:
    `banned` symbols (pad, BOS) get none, matching what the sampler draws."""
    return F.log_softmax(mask_banned(logits.float(), banned), dim=-1)


def step_kl(lprobs_p: Tensor, lprobs_q: Tensor) -> Tensor:
    """KL[p_t || q_t] = sum_v p_t(v) (log p_t(v) - log q_t(v)) at every step:
    [B, T, V] finite log-probabilities (see token_prediction.BANNED_LOG_PROB) -> [B, T].
    A sequence's stepwise KL is the masked sum over t."""
    return (lprobs_p.exp() * (lprobs_p - lprobs_q)).sum(-1)


def score_function_surrogate(step_losses: Tensor, lprobs: Tensor, target: Tensor,
                             mask: Tensor) -> Tensor:
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
    lprobs : Tensor, shape (B, T, V)
        G's log-probabilities at every step, with gradient.
    target : LongTensor, shape (B, T)
        the drawn tokens s_t.
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
    token_lprobs = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    # log G - sg(log G): zero value, so the loss still reads as the KL
    score = to_go * (token_lprobs - token_lprobs.detach())
    return torch.where(mask, score, torch.zeros_like(score)).sum(-1)


def token_log_probs(lprobs: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """log-probability of each sequence: sum over the masked target positions."""
    gathered = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return torch.where(mask, gathered, torch.zeros_like(gathered)).sum(-1)


def js_pi_terms(log_q_data, log_m_data, log_q_samples, log_m_samples, pi):
    """Per-sequence terms of the mediator estimate of JS_pi[P||Q]:

        JS_pi = pi E_P[log(P / M)] + (1 - pi) E_Q[log(Q / M)],
        P / M = (1 - (1 - pi) Q / M) / pi   when M = pi P + (1 - pi) Q,

    so both expectations need only log Q and log M of sequences, data for the
    first, samples of Q for the second. Returns the weighted terms
    (pi log(P/M) per data sequence, (1 - pi) log(Q/M) per sample); an imperfect
    mediator can make 1 - (1 - pi) Q/M <= 0, clamped to keep the log finite."""
    ratio = torch.exp((log_q_data - log_m_data).clamp(max=50.0))
    p_over_m = ((1 - (1 - pi) * ratio) / pi).clamp(min=1e-8)
    return pi * torch.log(p_over_m), (1 - pi) * (log_q_samples - log_m_samples)


def token_js_pi(lprobs: Tensor, target: Tensor, pi: float, label_smoothing: float = 0.0) -> Tensor:
    """JS_pi[P_t||Q_t] per position, P_t the one-hot (or label-smoothed) target
    and Q_t = exp(lprobs) the model: [N, V], [N] -> [N].

    With one-hot P it is closed form in Q_t(y):
        KL[P||M] = -log M(y),  M(y) = pi + (1 - pi) Q(y)
        KL[Q||M] = -(1 - Q(y)) log(1 - pi) + Q(y) (log Q(y) - log M(y)).
    With label smoothing, JS_pi = H(M) - pi H(P) - (1 - pi) H(Q) over V,
    M bounded away from 0 by the smoothing."""
    lprobs = lprobs.float()
    log_pi, log_1m_pi = math.log(pi), math.log1p(-pi)
    if label_smoothing == 0:
        log_q_y = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        log_m_y = torch.logaddexp(torch.full_like(log_q_y, log_pi), log_1m_pi + log_q_y)
        q_y = log_q_y.exp()
        kl_q_m = -(1 - q_y) * log_1m_pi + q_y * (log_q_y - log_m_y)
        return pi * (-log_m_y) + (1 - pi) * kl_q_m
    vocab = lprobs.size(-1)
    off_target = label_smoothing / (vocab - 1)
    q = lprobs.exp()
    # M >= pi * off_target > 0 everywhere: its log is safe in probability space;
    # the target column is corrected afterwards instead of building P [N, V].
    m = (1 - pi) * q + pi * off_target
    entropy_m = -(m * m.log()).sum(-1)
    q_y = q.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    m_y_wrong = (1 - pi) * q_y + pi * off_target
    m_y = (1 - pi) * q_y + pi * (1 - label_smoothing)
    entropy_m = entropy_m + m_y_wrong * m_y_wrong.log() - m_y * m_y.log()
    entropy_q = -(q * lprobs).sum(-1)
    entropy_p = -((1 - label_smoothing) * math.log1p(-label_smoothing)
                  + label_smoothing * math.log(off_target))
    return entropy_m - pi * entropy_p - (1 - pi) * entropy_q
