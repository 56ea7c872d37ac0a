"""Soft inputs for the second pass of scheduled sampling: a mixture of word
embeddings in place of a replaced token (Mihaylova & Martins, ACL SRW 2019,
"Scheduled Sampling for Transformers"), fed to any fairseq decoder without
forking its class.

The decoder is given its usual token input; a forward hook on its embedding
module replaces, at the replaced positions only, the rows that the embedding
looked up by the mixtures E^T w. Everything after the lookup (scaling,
positions, dropout, layers) is the decoder's own, and an encoder that shares
the embedding module is left alone: the hook acts only on the call that looks
up this very token tensor, once."""

import contextlib

import torch
from torch import Tensor

from fairseq_ot.modules.token_prediction import mask_banned

MIXES = ("prediction", "topk", "softmax", "gumbel")


def mixture_weights(logits: Tensor, mix: str, topk: int = 1, temperature: float = 1.0, banned=(),
                    generator=None) -> Tensor:
    """[N, V] logits -> [N, V] weights w (rows sum to 1, zero on `banned`):

        topk:     w = softmax over the k largest logits, 0 elsewhere
        softmax:  w = softmax(z / tau)
        gumbel:   w = softmax((z + g) / tau), g_v = -log(-log u_v), u ~ U(0, 1) from `generator`

    No gradient flows into the weights (the first pass has none)."""
    scores = mask_banned(logits.detach().float(), banned)
    if mix == "topk":
        top = scores.topk(topk, dim=-1)
        return torch.zeros_like(scores).scatter_(-1, top.indices, torch.softmax(top.values, dim=-1))
    if mix == "gumbel":
        uniforms = torch.rand(scores.shape, generator=generator, device=scores.device)
        scores = scores - torch.log(-torch.log(uniforms.clamp_min(torch.finfo(torch.float32).tiny)))
    elif mix != "softmax":
        raise ValueError(f"mixture must be one of {MIXES[1:]}, got {mix!r}")
    return torch.softmax(scores / temperature, dim=-1)


@contextlib.contextmanager
def embedded_as(embed_tokens: torch.nn.Module, tokens: Tensor, replaced: Tensor, rows: Tensor):
    """Within the block, `embed_tokens(tokens)` (that tensor, first call only)
    returns its lookup with the `replaced` [B, T] positions holding `rows`
    [replaced.sum(), d] (in the lookup's dtype)."""
    pending = [True]

    def replace(module, inputs, output):
        if not pending[0] or inputs[0] is not tokens:
            return output
        pending[0] = False
        mixed = output.clone()
        mixed[replaced] = rows.to(output.dtype)
        return mixed

    # first among the module's hooks: any other sees the lookup as the decoder does
    handle = embed_tokens.register_forward_hook(replace, prepend=True)
    try:
        yield
    finally:
        handle.remove()
    if pending[0]:
        raise RuntimeError(f"{type(embed_tokens).__name__} never looked up the decoder's input tokens: "
                           "this decoder cannot take embedding mixtures")
