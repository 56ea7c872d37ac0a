"""The model's own tokens, drawn from its logits, for feeding back as inputs."""

import torch
from torch import Tensor

PREDICTIONS = ("sample", "argmax")


def predict_tokens(logits: Tensor, mode: str, banned=(), generator=None) -> Tensor:
    """[..., V] logits -> [...] token indices, never one of `banned` (pad,
    BOS: symbols that must not enter a prefix). `sample` draws from
    softmax(logits) by inverting its cumulative sum at a uniform draw (on CPU
    several times faster than Gumbel or exponential noise over V, whose
    generators cost tens of ns per entry), its uniforms from `generator`
    (torch's global one if None); `argmax` is greedy."""
    logits = logits.detach()
    if mode == "sample":
        scores = logits.float()
        if banned:
            scores = scores.index_fill(-1, torch.tensor(list(banned), device=scores.device),
                                       float("-inf"))
        cdf = torch.softmax(scores, dim=-1).cumsum_(-1)
        uniform = torch.rand(cdf.shape[:-1] + (1,), device=cdf.device, generator=generator) * cdf[..., -1:]
        # right=True: the first token whose cumulative mass exceeds the draw,
        # so a zero-probability (banned) token is never chosen
        index = torch.searchsorted(cdf, uniform, right=True).squeeze(-1)
        return index.clamp_(max=cdf.size(-1) - 1)
    if mode != "argmax":
        raise ValueError(f"prediction mode must be one of {PREDICTIONS}, got {mode!r}")
    # the best token that is not banned is among the top len(banned) + 1
    top = logits.topk(len(banned) + 1, dim=-1).indices
    allowed = ~torch.isin(top, torch.tensor(list(banned), device=top.device))
    return top.gather(-1, allowed.float().argmax(-1, keepdim=True)).squeeze(-1)
