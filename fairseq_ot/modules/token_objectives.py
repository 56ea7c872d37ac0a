"""Token-level objectives under teacher forcing that reweight or complement
the NLL of each reference token: TaiLr (Ji et al., ICLR 2023), MixCE (Zhang
et al., ACL 2023) and EMO (Ren et al., ICLR 2024).

Each function takes the model's log-probabilities [N, V] (float32; any
float dtype is cast) and the reference tokens [N] and returns float32
per-position values [N]; the caller masks the padding and sums. Every
weight is a constant of the gradient (detached), as in the papers."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# EMO's ratio NLL / (EMO + EMO_OFFSET), as the reference code offsets it
EMO_OFFSET = 1e-10


def target_log_probs(lprobs: Tensor, target: Tensor) -> Tensor:
    """log q(y_t) [N] of the reference tokens, with gradient."""
    return lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)


def tailr_weights(log_p: Tensor, gamma: float, min_weight: float) -> Tensor:
    """TaiLr's weights w = p / (gamma + (1 - gamma) p), clamped to
    [min_weight, 1], from log p [N] (no gradient) -> [N] float32.

    Computed as 1 / (1 + gamma expm1(-log p)), equal to it, in float64:
    finite for every p > 0, and exactly 1 at gamma = 0 (maximum likelihood)."""
    if gamma == 0:
        return torch.ones_like(log_p, dtype=torch.float32)
    with torch.no_grad():
        weight = 1.0 / (1.0 + gamma * torch.expm1(-log_p.double()))
        return weight.clamp(min=min_weight, max=1.0).float()


def tailr_token_loss(lprobs: Tensor, target: Tensor, gamma: float, min_weight: float,
                     label_smoothing: float = 0.0):
    """TaiLr per position (Ji et al., ICLR 2023, "Tailoring Language
    Generation Models under Total Variation Distance"):

        loss_t = (1 - eps) w_t (-log q(y_t)) + (eps / V) sum_v (-log q(v)),
        w_t = sg(clamp(q(y_t) / (gamma + (1 - gamma) q(y_t)), min_weight, 1)),

    [N, V], [N] -> (loss [N], w [N]). As the reference code
    (thu-coai/TaiLr, fairseq/criterions/tailr.py), the smoothing term is not
    reweighted and spreads eps over all V types (fairseq 0.12's
    label_smoothed_cross_entropy: eps / (V - 1) over the others): at
    gamma = 0 this is label_smoothed_cross_entropy with smoothing
    eps (V - 1) / V, at eps = 0 the NLL."""
    lprobs = lprobs.float()
    log_p = target_log_probs(lprobs, target)
    weight = tailr_weights(log_p.detach(), gamma, min_weight)
    if label_smoothing == 0:
        return weight * -log_p, weight
    smooth = -lprobs.sum(-1)
    loss = (1.0 - label_smoothing) * weight * -log_p + (label_smoothing / lprobs.size(-1)) * smooth
    return loss, weight


def mixce_token_loss(lprobs: Tensor, target: Tensor, eta: float):
    """MixCE per position (Zhang et al., ACL 2023, "MixCE: Training
    Autoregressive Language Models by Mixing Forward and Reverse
    Cross-Entropies"), its approximation under teacher forcing:

        loss_t = eta (-log q(y_t)) + (1 - eta) sg(q(y_t)) (-log q(y_t)),

    [N, V], [N] -> (loss [N], weight eta + (1 - eta) sg(q(y_t)) [N]); eta = 1
    is the NLL exactly (the weight is then 1.0)."""
    log_p = target_log_probs(lprobs.float(), target)
    weight = eta + (1.0 - eta) * log_p.detach().exp()
    return weight * -log_p, weight


def output_embedding(decoder: nn.Module) -> Tensor:
    """The output embedding [V, d] whose rows score the next token: a
    transformer's `output_projection`, an LSTM's `fc_out`, or the shared
    `embed_tokens` (None if the decoder has none of them)."""
    projection = getattr(decoder, "output_projection", None)
    if isinstance(projection, nn.Linear):
        return projection.weight
    if not getattr(decoder, "share_input_output_embed", False):
        fc_out = getattr(decoder, "fc_out", None)
        if isinstance(fc_out, nn.Linear):
            return fc_out.weight
    embed_tokens = getattr(decoder, "embed_tokens", None)
    if getattr(decoder, "share_input_output_embed", False) and isinstance(embed_tokens, nn.Embedding):
        return embed_tokens.weight
    return None


def emo_cost(embedding: Tensor, target: Tensor) -> Tensor:
    """EMO's transport cost from each reference token to every type,
    1 - cos(e_y, e_v) [N, V] float32, from a constant copy of the output
    embedding [V, d]: rows normalised to unit length (a zero row, such as
    fairseq's padding embedding, stays zero: cost 1 to every other type,
    where the reference's division gives NaN), exactly 0 at v = y and clamped
    at 0 elsewhere (it is >= 0 but for rounding)."""
    with torch.no_grad(), torch.autocast(device_type=embedding.device.type, enabled=False):
        unit = F.normalize(embedding.detach().float(), dim=-1)
        cost = torch.mm(unit[target], unit.t()).neg_().add_(1.0).clamp_(min=0.0)
        return cost.scatter_(-1, target.unsqueeze(-1), 0.0)


class _EMOTokenLoss(torch.autograd.Function):
    """EMO's per-position loss from the log-probabilities; the gradient over
    them, formed in the forward pass, is the one [N, V] tensor kept for
    backward."""

    @staticmethod
    def forward(ctx, lprobs, target, cost):
        nll = -target_log_probs(lprobs, target)
        probs_cost = lprobs.exp().mul_(cost)
        emo = probs_cost.sum(-1)
        ratio = nll / (emo + EMO_OFFSET)
        loss = 0.5 * (nll + ratio * emo)
        # d loss / d log q(v) = 0.5 (ratio q(v) cost(v) - [v = y])
        grad = probs_cost.mul_(0.5 * ratio.unsqueeze(-1))
        grad.scatter_add_(-1, target.unsqueeze(-1), grad.new_full((grad.size(0), 1), -0.5))
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(emo)
        return loss, emo

    @staticmethod
    def backward(ctx, grad_loss, grad_emo):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.unsqueeze(-1), None, None


def emo_token_loss(lprobs: Tensor, target: Tensor, embedding: Tensor):
    """EMO per position (Ren et al., ICLR 2024, "Earth Mover Distance
    Optimization for Auto-Regressive Language Modeling"): with a one-hot
    reference the earth mover distance to q_t under the cosine cost of a
    constant (detached) output embedding E [V, d] is

        EMO_t = sum_v q_t(v) (1 - cos(e_{y_t}, e_v)) = 1 - e_{y_t}^T E^T q_t  (unit rows),

    and the loss mixes it with the NLL at the ratio of the two, per token
    and detached, as the reference code (DRSY/EMO, emo_patch.py):

        loss_t = 0.5 (NLL_t + sg(NLL_t / (EMO_t + 1e-10)) EMO_t),

    [N, V], [N], [V, d] -> (loss [N], EMO [N], no gradient). Its value is
    NLL_t (but for the 1e-10); its gradient 0.5 (grad NLL_t + NLL_t / EMO_t
    grad EMO_t). EMO_t is summed as q^T cost over non-negative costs (not
    as 1 minus a near-1 inner product), so a confident model's EMO_t keeps
    its relative precision."""
    return _EMOTokenLoss.apply(lprobs.float(), target, emo_cost(embedding, target))

