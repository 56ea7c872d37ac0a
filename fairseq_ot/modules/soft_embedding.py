"""Soft-argmax word embeddings and the sequence-level OT distance between them
(Chen et al., ICLR 2019, "Improving Sequence-to-Sequence Learning via
Optimal Transport")."""

import torch
import torch.nn.functional as F
from torch import Tensor

from fairseq_ot.modules.optimal_transport import solve_ot, uniform_marginals
from fairseq_ot.modules.packed_positions import unpack


def soft_embed(lprobs: Tensor, embedding: Tensor, temperature: float = 1.0, mask=None) -> Tensor:
    """E^T softmax(logits / tau) for every position: [B, T, V] x [V, d] -> [B, T, d].

    Takes log-probabilities: softmax(lprobs / tau) equals softmax(logits / tau)
    because they differ by a per-position constant, and the criterion already
    holds lprobs for the NLL, so no second copy of the logits is kept. With a
    [B, T] mask only those positions are embedded (the others are zero): the
    [*, V] x [V, d] products cost as much as the output layer, and padding
    is often a third of a batch."""
    with torch.autocast(device_type=lprobs.device.type, enabled=False):
        rows = lprobs.float() if mask is None else lprobs[mask].float()
        # at tau = 1 the beliefs are exp(lprobs): one pass instead of softmax's three
        beliefs = rows.exp() if temperature == 1.0 else torch.softmax(rows / temperature, dim=-1)
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
