"""The model's own tokens, drawn from its logits, for feeding back as inputs."""

import torch
from torch import Tensor

PREDICTIONS = ("sample", "argmax")

# The logit, and log-probability, of a banned symbol: exp() of it is exactly
# 0, yet, unlike -inf, differences of two such values are 0 rather than NaN,
# so KL sums need no masking pass over the vocabulary.
BANNED_LOG_PROB = -1e30


def banned_symbols(dictionary):
    """The symbols no sequence may contain: padding and BOS (none without a
    dictionary, as for criterions built without a task in unit tests)."""
    if dictionary is None:
        return ()
    return (dictionary.pad(), dictionary.bos())


def mask_banned(logits: Tensor, banned=()) -> Tensor:
    """`logits` with the `banned` symbols at BANNED_LOG_PROB (a copy)."""
    if not banned:
        return logits
    return logits.index_fill(-1, torch.tensor(list(banned), device=logits.device), BANNED_LOG_PROB)


def ban_(logits: Tensor, banned=()) -> Tensor:
    """`mask_banned` in place and outside autograd, for logits fresh from an
    output layer that every later use masks alike: the banned symbols'
    probabilities are then exactly 0 and no loss reads their log-probability,
    so their gradient is zero with or without autograd's record of the fill,
    and the [..., V] copies of an out-of-place mask (one forward, one
    backward) are saved. float16 takes its most negative finite value, which
    float32 log-softmax maps to probability 0 as well. Returns `logits`."""
    if banned:
        value = max(BANNED_LOG_PROB, torch.finfo(logits.dtype).min)
        with torch.no_grad():
            logits.index_fill_(-1, torch.tensor(list(banned), device=logits.device), value)
    return logits


def draw_tokens(scores: Tensor, generator=None, uniform=None) -> Tensor:
    """[..., V] float scores -> [...] tokens drawn from softmax(scores): with
    F = cumsum(softmax(scores)) and u ~ U[0, 1) from `generator` (torch's
    global one if None; or the [..., 1] `uniform` given), the first index i
    with F_i > u F_V. On CPU several
    times faster than Gumbel or exponential noise over V, whose generators
    cost tens of ns per entry; cheaper than exp(scores - max) cumulated
    unnormalised, which takes three operators (max, subtract, exp) for
    softmax's one and equals it only up to rounding."""
    cdf = torch.softmax(scores, dim=-1).cumsum_(-1)
    if uniform is None:
        uniform = torch.rand(cdf.shape[:-1] + (1,), device=cdf.device, generator=generator)
    # right=True: the first token whose cumulative mass exceeds the draw,
    # so a zero-probability (banned) token is never chosen
    index = torch.searchsorted(cdf, uniform * cdf[..., -1:], right=True).squeeze(-1)
    return index.clamp_(max=cdf.size(-1) - 1)


def predict_tokens(logits: Tensor, mode: str, banned=(), generator=None) -> Tensor:
    """[..., V] logits -> [...] token indices, never one of `banned` (pad,
    BOS: symbols that must not enter a prefix). `sample` draws from
    softmax(logits) (`draw_tokens`, its uniforms from `generator`, torch's
    global one if None); `argmax` is greedy."""
    logits = logits.detach()
    if mode == "sample":
        return draw_tokens(mask_banned(logits.float(), banned), generator)
    if mode != "argmax":
        raise ValueError(f"prediction mode must be one of {PREDICTIONS}, got {mode!r}")
    # the best token that is not banned is among the top len(banned) + 1
    top = logits.topk(len(banned) + 1, dim=-1).indices
    allowed = ~torch.isin(top, torch.tensor(list(banned), device=top.device))
    return top.gather(-1, allowed.float().argmax(-1, keepdim=True)).squeeze(-1)
