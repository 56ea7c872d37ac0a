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


def stepwise_kl(lprobs_p: Tensor, lprobs_q: Tensor, mask: Tensor) -> Tensor:
    """sum_t [mask_t] sum_v p_t(v) (log p_t(v) - log q_t(v)) per sequence:
    [B, T, V] finite log-probabilities (see token_prediction.BANNED_LOG_PROB) and a [B, T]
    mask -> [B]."""
    per_step = (lprobs_p.exp() * (lprobs_p - lprobs_q)).sum(-1)
    return (per_step * mask).sum(-1)


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
