"""Soft-argmax word embeddings and the sequence-level OT distance between them
(Chen et al., ICLR 2019, "Improving Sequence-to-Sequence Learning via
Optimal Transport")."""

import torch
import torch.nn.functional as F
from torch import Tensor

from fairseq_ot.modules.optimal_transport import solve_ot, uniform_marginals
from fairseq_ot.modules.packed_positions import unpack


BELIEFS = ("softmax", "gumbel_softmax", "logits")


def soft_embed(scores: Tensor, embedding: Tensor, temperature: float = 1.0, mask=None, belief: str = "softmax",
               generator=None) -> Tensor:
    """E^T w_t for every position t: [B, T, V] x [V, d] -> [B, T, d], with the
    belief w_t of `belief`::

        softmax:         w = softmax(z / tau)                (the paper's soft-argmax)
        gumbel_softmax:  w = softmax((z + g) / tau),  g_v = -log(-log u_v), u ~ U(0, 1)
        logits:          w = z                               (the released code's "soft ids":
                                                              Texar's embedder fed raw logits)

    Parameters: `scores` are the log-probabilities for softmax and
    gumbel_softmax (softmax(lprobs / tau) equals softmax(z / tau): they differ
    by a per-position constant, and the criterion already holds lprobs for the
    NLL, so no second copy of the logits is kept) and the raw logits z for
    logits (there the constant matters: E^T 1 is not 0); `generator` draws
    the Gumbel noise (a `batch_random.batch_generator`), in the order of the
    embedded positions; with a [B, T] mask only those positions are embedded
    (the others are zero): the `[*, V] x [V, d]` products cost as much as the
    output layer, and padding is often a third of a batch.

    References: Chen et al., ICLR 2019 (beliefs); Jang et al., ICLR 2017
    (Gumbel-softmax)."""
    with torch.autocast(device_type=scores.device.type, enabled=False):
        rows = scores.float() if mask is None else scores[mask].float()
        if belief == "logits":
            beliefs = rows
        elif belief == "gumbel_softmax":
            uniforms = torch.rand(rows.shape, generator=generator, device=rows.device)
            gumbel = -torch.log(-torch.log(uniforms.clamp_min(torch.finfo(torch.float32).tiny)))
            beliefs = torch.softmax((rows + gumbel) / temperature, dim=-1)
        elif temperature == 1.0:
            # at tau = 1 the beliefs are exp(lprobs): one pass instead of softmax's three
            beliefs = rows.exp()
        else:
            beliefs = torch.softmax(rows / temperature, dim=-1)
        embedded = torch.matmul(beliefs, embedding.float())
        return embedded if mask is None else unpack(embedded, mask)


def cosine_cost(x: Tensor, y: Tensor) -> Tensor:
    """1 - cos(x_i, y_j) for [B, n, d] and [B, m, d] -> [B, n, m] in float32."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = F.normalize(x.float(), dim=-1, eps=1e-8)
        y = F.normalize(y.float(), dim=-1, eps=1e-8)
        return 1.0 - torch.bmm(x, y.transpose(1, 2))


def sequence_ot_distance(
    x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor, **solver_args
) -> Tensor:
    """Per-sentence OT distance [B] between embedded sequences x [B, n, d] and
    y [B, m, d] under cosine cost, uniform mass over the True mask entries."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        cost = cosine_cost(x, y)
        a, b = uniform_marginals(x_mask), uniform_marginals(y_mask)
        return solve_ot(cost, a, b, **solver_args).distance
