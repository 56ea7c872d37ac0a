"""Ancestral sampling from fairseq decoders, batched, with incremental state."""

import contextlib

import torch
from torch import Tensor

from fairseq_ot.modules.lean_decoding import lean_step
from fairseq_ot.modules.token_prediction import BANNED_LOG_PROB, draw_tokens

# On a GPU, steps between two checks whether every sample has ended: a check
# is a host sync, which stops the host from queueing the next step's kernels
# while the device runs this one; up to this many - 1 steps are run past the
# end and undone (their tokens dropped, the generator's state rewound).
GPU_STOP_CHECK_EVERY = 4
# A step that can drop ended samples (the lean Transformer step, on CPU,
# where every step checks) drops them once at most this fraction of the
# rows it steps is still running: fewer, larger copies of its caches.
DROP_ENDED_BELOW = 0.75


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


class IncrementalStep:
    """fairseq's own incremental decoding, for any decoder: step(tokens [B],
    t) -> logits [B, V] after the prefix that ends with `tokens` at position
    t (the decoder re-reads the whole prefix: its positions count it)."""

    def __init__(self, decoder, encoder_out):
        self.decoder = decoder
        self.encoder_out = encoder_out
        self.prefix = None
        self.incremental_state = {}

    def __call__(self, tokens: Tensor, step: int) -> Tensor:
        column = tokens.unsqueeze(1)
        self.prefix = column if step == 0 else torch.cat([self.prefix, column], dim=1)
        return self.decoder(self.prefix, encoder_out=self.encoder_out,
                            incremental_state=self.incremental_state)[0][:, -1]


def default_generator(device):
    """The generator torch.rand draws from on `device` without one."""
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None
                                             else torch.cuda.current_device()]
    return torch.default_generator


@torch.no_grad()
def ancestral_sample(model, length_limits: Tensor, eos: int, pad: int, banned=(), encoder_input=None,
                     generator=None, temperature=1.0, lean=True):
    """Sample one sequence per entry of `length_limits` [B] (maximum number of
    tokens, EOS included) from a fairseq encoder-decoder (`encoder_input` =
    dict(src_tokens, src_lengths), one row per sample) or language model,
    drawing from the torch.Generator `generator` (the global one if None),
    each token from softmax(logits / `temperature`) over the symbols not
    `banned` (the default 1.0 divides by one: the model's own distribution,
    bit for bit).

    fairseq Transformer decoders step by `lean_decoding.LeanTransformerStep`
    (the same logits in fewer operators; the same tokens, tested), other
    decoders, and all with `lean` False, by fairseq's incremental decoding.

    Returns tokens [B, L] (the sampled targets, EOS-terminated, right-padded)
    and a mask [B, L] of the positions where the length limit put EOS: these
    tokens are not draws from the model."""
    encoder_out = None
    if encoder_input is not None:
        encoder_out = model.encoder(encoder_input["src_tokens"], src_lengths=encoder_input["src_lengths"])
    max_len = int(length_limits.max())
    step = lean and lean_step(model.decoder, encoder_out, length_limits.size(0), max_len, banned)
    step = step or IncrementalStep(model.decoder, encoder_out)
    check_every = GPU_STOP_CHECK_EVERY if length_limits.device.type == "cuda" else 1
    return sample_steps(step, length_limits, max_len, eos, pad, banned, generator, temperature, check_every)


def sample_steps(step, length_limits: Tensor, max_len: int, eos: int, pad: int, banned, generator,
                 temperature: float, check_every: int):
    """ancestral_sample's loop over the logits step(tokens, t) (their tensor
    is the loop's to overwrite), checking every `check_every` steps whether
    all samples have ended: steps drawn past the end are undone, so the
    tokens and the generator's state are those of a check at every step.
    With a check at every step, a step that has `keep(rows)` stops stepping
    ended samples (`DROP_ENDED_BELOW`); a uniform is still drawn for every
    row, so the tokens and the generator's state stay the same."""
    batch_size, device = length_limits.size(0), length_limits.device
    rng = None  # the generator to rewind, needed only when checks are spaced
    if check_every > 1:
        rng = generator if generator is not None else default_generator(device)
    drops_ended = check_every == 1 and hasattr(step, "keep")
    rows = None  # the rows the step still runs, once some were dropped
    banned_index = torch.tensor(list(banned), dtype=torch.long, device=device)
    token = torch.full((batch_size,), eos, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    tokens, unchecked = [], []  # unchecked: (all ended, generator state) per step since the last check
    for index in range(max_len):
        scores = step(token if rows is None else token.index_select(0, rows), index)
        if temperature != 1.0:  # x / 1.0 == x: skipped, bit for bit the same
            scores = scores / temperature
        scores = scores.float()
        if banned:
            scores.index_fill_(-1, banned_index, BANNED_LOG_PROB)
        uniform = torch.rand(batch_size, 1, device=device, generator=generator)  # one per row, running or not
        if rows is None:
            token = draw_tokens(scores, uniform=uniform)
        else:
            drawn = draw_tokens(scores, uniform=uniform.index_select(0, rows))
            token = token.new_full((batch_size,), pad).index_copy_(0, rows, drawn)
        # the last allowed position ends the sequence whatever was drawn there
        token.masked_fill_(length_limits == index + 1, eos)
        token.masked_fill_(finished, pad)
        finished |= token == eos
        tokens.append(token)
        unchecked.append((finished.all(), rng.get_state() if check_every > 1 else None))
        if len(unchecked) == check_every or index == max_len - 1:
            ended = torch.stack([all_ended for all_ended, _ in unchecked]).tolist()
            if True in ended:
                first = ended.index(True)
                if first < len(ended) - 1:
                    rng.set_state(unchecked[first][1])
                    del tokens[first - len(ended) + 1:]
                break
            unchecked = []
        if drops_ended:
            running = (~finished).nonzero().squeeze(1)
            if running.numel() <= DROP_ENDED_BELOW * (batch_size if rows is None else rows.numel()):
                step.keep(running if rows is None else torch.searchsorted(rows, running))
                rows = running
    if not tokens:  # every limit is 0
        return token.new_empty(batch_size, 0), finished.new_empty(batch_size, 0)
    tokens = torch.stack(tokens, dim=1)
    # the limit forced EOS at position limit - 1 on the sequences still
    # running there: those with EOS there (one ended before has padding)
    positions = torch.arange(tokens.size(1), device=device)
    forced = tokens.eq(eos) & positions.eq(length_limits.unsqueeze(1) - 1)
    return tokens, forced


def draw_continuations(model, data_input, order: Tensor, max_len_a: float, max_len_b: int, eos: int,
                       pad: int, banned, rng):
    """Samples from `model` (dropout off, no gradient) for the rows `order`
    of a batch's net_input (their sources, for an encoder-decoder; a
    language model draws `order.numel()` sequences), each at most
    a * source length + b tokens (b for language models) and at most the
    model's max_decoder_positions(), as fairseq's SequenceGenerator caps
    --max-len-a/b: the decoder takes no longer prefix, and a * length + b
    past 2^63 would wrap to a negative integer, clamped to 1 (one-token
    samples). a * length + b in float64, as fairseq computes it. Returns
    ancestral_sample's tokens and forced-EOS mask."""
    longest = model.max_decoder_positions()
    if decoder_input_key(data_input) == "prev_output_tokens":  # condition on the source
        encoder_input = {key: data_input[key].index_select(0, order) for key in ("src_tokens", "src_lengths")}
        limits = max_len_a * encoder_input["src_lengths"].double() + max_len_b
        limits = limits.clamp(min=1, max=longest).long()
    else:
        encoder_input = None
        limits = torch.full((order.numel(),), min(max_len_b, longest), dtype=torch.long, device=order.device)
    with torch.no_grad(), evaluation_mode(model):
        return ancestral_sample(model, limits, eos, pad, banned, encoder_input, rng)


def teacher_forcing_input(data_input, samples: Tensor, order: Tensor, eos: int, pad: int):
    """The net_input that feeds `samples` [S, L] as gold targets, with the
    sources of the batch's rows `order` [S]: shifted right behind EOS, as
    fairseq's datasets build prev_output_tokens."""
    shifted = torch.cat([torch.full_like(samples[:, :1], eos), samples[:, :-1]], 1)
    lengths = samples.ne(pad).sum(1)
    if decoder_input_key(data_input) == "src_tokens":  # language model
        return {"src_tokens": shifted, "src_lengths": lengths}
    return {
        "src_tokens": data_input["src_tokens"].index_select(0, order),
        "src_lengths": data_input["src_lengths"].index_select(0, order),
        "prev_output_tokens": shifted,
    }
