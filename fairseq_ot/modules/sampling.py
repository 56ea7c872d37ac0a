"""Ancestral sampling from fairseq decoders, batched, with incremental state."""

import contextlib

import torch
from torch import Tensor

from fairseq_ot.modules.token_prediction import predict_tokens


def decoder_input_key(net_input):
    """Where a sample's decoder inputs are: encoder-decoders read
    prev_output_tokens, fairseq language models src_tokens."""
    return "prev_output_tokens" if "prev_output_tokens" in net_input else "src_tokens"


@contextlib.contextmanager
def evaluation_mode(module):
    """Dropout off while sampling, the module's own mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def ancestral_sample(model, length_limits: Tensor, eos: int, pad: int, banned=(), encoder_input=None,
                     generator=None, temperature=1.0):
    """Sample one sequence per entry of `length_limits` [B] (maximum number of
    tokens, EOS included) from a fairseq encoder-decoder (`encoder_input` =
    dict(src_tokens, src_lengths), one row per sample) or language model,
    drawing from the torch.Generator `generator` (the global one if None),
    each token from softmax(logits / `temperature`) over the symbols not
    `banned` (the default 1.0 divides by one: the model's own distribution,
    bit for bit).

    Returns tokens [B, L] (the sampled targets, EOS-terminated, right-padded)
    and a mask [B, L] of the positions where the length limit put EOS: these
    tokens are not draws from the model."""
    encoder_out = None
    if encoder_input is not None:
        encoder_out = model.encoder(encoder_input["src_tokens"], src_lengths=encoder_input["src_lengths"])
    batch_size = length_limits.size(0)
    device = length_limits.device
    prefix = torch.full((batch_size, 1), eos, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    forced = torch.zeros(batch_size, 0, dtype=torch.bool, device=device)
    incremental_state = {}
    for step in range(int(length_limits.max())):
        logits = model.decoder(prefix, encoder_out=encoder_out, incremental_state=incremental_state)[0]
        token = predict_tokens(logits[:, -1] / temperature, "sample", banned, generator)
        # the last allowed position ends the sequence whatever was drawn there
        at_limit = ~finished & (length_limits == step + 1)
        token = torch.where(at_limit, eos, token)
        token = torch.where(finished, pad, token)
        prefix = torch.cat([prefix, token.unsqueeze(1)], dim=1)
        forced = torch.cat([forced, at_limit.unsqueeze(1)], dim=1)
        finished |= token.eq(eos)
        if bool(finished.all()):
            break
    return prefix[:, 1:], forced
