"""One incremental step of fairseq's Transformer decoder in few operators,
for ancestral sampling.

fairseq's incremental decoding (`TransformerDecoder` with `incremental_state`)
re-reads the growing prefix, projects queries, keys and values separately,
concatenates each layer's cached keys and values with the new ones, masks
padding it looks for at every step and averages the encoder attention over
heads for alignment: 300 aten operators per step for a 3-layer decoder with
encoder attention, each a kernel launch on a GPU. `LeanTransformerStep`
computes the same next-token logits from the decoder's own parameters.

Once per sampling call it prepares, for every layer (h heads of size d,
s = d^-1/2 the query scaling, T the longest sample):

    W_qkv = [s W_q; W_k; W_v],  b_qkv = [s b_q; b_k; b_v]   rows head by head
    K, V  = empty [B h, T, d] each (one buffer [B h, T, 2, d])
    K_e = E W_ek^T + b_ek,  V_e = E W_ev^T + b_ev             E: encoder output
    M_e = -inf at padded source positions, 0 elsewhere
    P[t] = fairseq's positional embedding of position t (padding offset included)

and at step t, x the [B, C] state of the newest token y_t, computes

    x = embed_scale * Emb[y_t] (W_in) + P[t]  (then layernorm_embedding)
    per layer, each sublayer f as x <- x + f(LN(x)) (normalize_before)
    or x <- LN(x + f(x)) (post-norm):
        self-attention     [q, k, v] = x W_qkv^T + b_qkv            one addmm
                           K[:, t], V[:, t] = k, v                   in place
                           f(x) = softmax(q K[:, :t+1]^T) V[:, :t+1] W_o^T + b_o
        encoder attention  f(x) = softmax(q_e K_e^T + M_e) V_e W_eo^T + b_eo,
                           q_e = x s W_eq^T + s b_eq
        feed-forward       f(x) = act(x W_1^T + b_1) W_2^T + b_2
    z = LN(x) (W_out') W_out^T                  final norm, project_out_dim

The arithmetic is fairseq's, operator for operator, except the fused
projection (the same dot products, column for column) and the query scaling
folded into W_q, exact when s is a power of two (d = 16, 64, 256): on CPU the
logits come out bit for bit equal to fairseq's in float32 (tested within
1e-5). `lean_refusal` names what the step does not reproduce (adaptive
softmax, quantization noise, cross-self-attention, LayerDrop, NormFormer
scalings, ...); `ancestral_sample` then keeps fairseq's own decoding."""

from typing import Optional

import torch
from torch import Tensor, nn
from fairseq.models.transformer import TransformerDecoderBase
from fairseq.modules import (
    FairseqDropout,
    LayerDropModuleList,
    LearnedPositionalEmbedding,
    MultiheadAttention,
    SinusoidalPositionalEmbedding,
)
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase

_DECODER_METHODS = ("forward", "extract_features", "extract_features_scriptable", "output_layer")
_LAYER_METHODS = ("forward", "residual_connection")
_ATTENTION_METHODS = ("forward", "apply_sparse_mask")


def _inherits(module, base, names):
    """Whether `module` runs `base`'s own code for the methods `names` (no
    override in a subclass, no per-instance wrapper such as fairseq's
    activation checkpointing)."""
    return isinstance(module, base) and all(
        getattr(type(module), name) is getattr(base, name) and name not in vars(module) for name in names)


def _attention_refusal(attention):
    if not _inherits(attention, MultiheadAttention, _ATTENTION_METHODS):
        return f"{type(attention).__name__} is not fairseq's MultiheadAttention"
    if attention.bias_k is not None or attention.add_zero_attn or attention.use_xformers:
        return "attention with bias_kv, zero attention or xformers"
    if attention.beam_size != 1 or attention.onnx_trace:
        return "attention set up for beam search or ONNX export"
    return None


def lean_refusal(decoder, banned=()) -> Optional[str]:
    """Why `LeanTransformerStep` cannot reproduce `decoder`'s incremental
    decoding when the symbols `banned` are never drawn, or None when it can."""
    if not _inherits(decoder, TransformerDecoderBase, _DECODER_METHODS):
        return f"{type(decoder).__name__} is not fairseq's TransformerDecoder"
    if decoder.padding_idx not in banned:
        # fairseq masks a drawn padding symbol as a key in later steps
        return "padding may be drawn"
    if any(module.training for module in decoder.modules()):
        return "training mode"
    if any(isinstance(module, FairseqDropout) and module.p > 0 and module.apply_during_inference
           for module in decoder.modules()):
        return "dropout retained at inference"
    if isinstance(decoder.layers, LayerDropModuleList):
        # its iteration draws from the global generator even in eval mode
        return "LayerDrop"
    if decoder.adaptive_softmax is not None or decoder.quant_noise is not None:
        return "adaptive softmax or quantization noise"
    if decoder.cross_self_attention:
        return "cross-self-attention"
    if type(decoder.embed_tokens) is not nn.Embedding or decoder.embed_tokens.max_norm is not None:
        return "token embeddings other than a plain nn.Embedding"
    if type(decoder.output_projection) is not nn.Linear:
        return "an output projection other than nn.Linear"
    if decoder.embed_positions is not None and type(decoder.embed_positions) not in (
            LearnedPositionalEmbedding, SinusoidalPositionalEmbedding):
        return f"positions by {type(decoder.embed_positions).__name__}"
    for layer in decoder.layers:
        if not _inherits(layer, TransformerDecoderLayerBase, _LAYER_METHODS):
            return f"{type(layer).__name__} is not fairseq's TransformerDecoderLayer"
        normformer = (layer.attn_ln, layer.c_attn, layer.ffn_layernorm, layer.w_resid)
        if any(extra is not None for extra in normformer):
            return "NormFormer scalings"
        if layer.quant_noise > 0:
            return "quantization noise"
        for attention in (layer.self_attn, layer.encoder_attn):
            refusal = attention is not None and _attention_refusal(attention)
            if refusal:
                return refusal
    return None


def compute_dtype(parameter: Tensor):
    """The dtype the projections of `parameter` produce: autocast's where it
    is on, so that the caches take the keys and values without a cast."""
    device_type = parameter.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return parameter.dtype


class Affine:
    """x -> x W^T + b for x [B, C_in]: one addmm (mm without bias), W^T a
    view taken once, as F.linear takes it at every call."""

    def __init__(self, weight: Tensor, bias: Optional[Tensor]):
        self.weight_t = weight.t()
        self.bias = bias

    @classmethod
    def of(cls, linear: nn.Linear, scale=1.0):
        """The affine map of `linear`, output multiplied by `scale`."""
        bias = linear.bias if linear.bias is None or scale == 1.0 else linear.bias * scale
        return cls(linear.weight if scale == 1.0 else linear.weight * scale, bias)

    def __call__(self, x: Tensor) -> Tensor:
        if self.bias is None:
            return torch.mm(x, self.weight_t)
        return torch.addmm(self.bias, x, self.weight_t)


def attend(query: Tensor, keys_t: Tensor, values: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """softmax(q K^T + M) V per batch-head row: [N, 1, d] x [N, d, S] x [N, S, d]
    -> [N, 1, d], the softmax in float32 as fairseq's (`utils.softmax`)."""
    scores = torch.bmm(query, keys_t) if mask is None else torch.baddbmm(mask, query, keys_t)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).type_as(scores)
    return torch.bmm(probs, values)


def head_rows(rows: Tensor, heads: int) -> Tensor:
    """The [B h, ...] rows of attention state that belong to batch rows `rows`."""
    return (rows.unsqueeze(1) * heads + torch.arange(heads, device=rows.device)).flatten()


class SelfAttention:
    """Self-attention of the newest position over itself and the earlier ones:
    causal by construction, later positions are not in the cache yet."""

    def __init__(self, attention: MultiheadAttention, batch_size: int, max_len: int):
        heads, head_dim = attention.num_heads, attention.head_dim
        self.heads, self.head_dim = heads, head_dim
        projections = (attention.q_proj, attention.k_proj, attention.v_proj)
        scales = (attention.scaling, 1.0, 1.0)
        weight = torch.stack([p.weight * s for p, s in zip(projections, scales)])
        # rows head by head, [q; k; v] within a head: a batch's projection
        # then views as [B h, 3, d] without a copy
        weight = weight.view(3, heads, head_dim, -1).transpose(0, 1).reshape(3 * heads * head_dim, -1)
        bias = None
        if attention.q_proj.bias is not None:
            bias = torch.stack([p.bias * s for p, s in zip(projections, scales)])
            bias = bias.view(3, heads, head_dim).transpose(0, 1).reshape(-1)
        self.qkv = Affine(weight, bias)
        self.out = Affine.of(attention.out_proj)
        cache = weight.new_empty(batch_size * heads, max_len, 2, head_dim, dtype=compute_dtype(weight))
        self.cache = cache
        self.keys, self.values = cache[:, :, 0], cache[:, :, 1]

    def keep(self, rows: Tensor):
        """Go on with the batch rows `rows` only."""
        self.cache = self.cache.index_select(0, head_rows(rows, self.heads))
        self.keys, self.values = self.cache[:, :, 0], self.cache[:, :, 1]

    def __call__(self, x: Tensor, step: int) -> Tensor:
        qkv = self.qkv(x).view(-1, 3, self.head_dim)
        self.cache[:, step].copy_(qkv[:, 1:])
        keys_t = self.keys[:, :step + 1].transpose(1, 2)
        attended = attend(qkv[:, :1], keys_t, self.values[:, :step + 1])
        return self.out(attended.view(x.size(0), -1))


class EncoderAttention:
    """Attention over the encoder output, its keys and values projected once."""

    def __init__(self, attention: MultiheadAttention, encoder_out: Tensor, padding_mask: Optional[Tensor]):
        source_len, batch_size, _ = encoder_out.shape
        heads, head_dim = attention.num_heads, attention.head_dim
        self.heads, self.head_dim = heads, head_dim
        # fairseq's layout of the cached keys and values: [S, B h, d] transposed
        keys = attention.k_proj(encoder_out).view(source_len, batch_size * heads, head_dim)
        self.keys_t = keys.permute(1, 2, 0)
        values = attention.v_proj(encoder_out).view(source_len, batch_size * heads, head_dim)
        self.values = values.transpose(0, 1)
        self.mask = None
        if padding_mask is not None and bool(padding_mask.any()):
            mask = keys.new_zeros(batch_size, heads, 1, source_len)
            mask.masked_fill_(padding_mask.view(batch_size, 1, 1, source_len), float("-inf"))
            self.mask = mask.view(batch_size * heads, 1, source_len)
        self.query = Affine.of(attention.q_proj, attention.scaling)
        self.out = Affine.of(attention.out_proj)

    def keep(self, rows: Tensor):
        """Go on with the batch rows `rows` only."""
        index = head_rows(rows, self.heads)
        self.keys_t, self.values = self.keys_t.index_select(0, index), self.values.index_select(0, index)
        if self.mask is not None:
            self.mask = self.mask.index_select(0, index)

    def __call__(self, x: Tensor, step: int) -> Tensor:
        query = self.query(x).view(-1, 1, self.head_dim)
        return self.out(attend(query, self.keys_t, self.values, self.mask).view(x.size(0), -1))


class FeedForward:
    """act(x W_1^T + b_1) W_2^T + b_2, act the layer's own activation."""

    def __init__(self, layer: TransformerDecoderLayerBase):
        self.fc1, self.fc2 = Affine.of(layer.fc1), Affine.of(layer.fc2)
        self.activation_fn = layer.activation_fn

    def keep(self, rows: Tensor):
        """Position by position: no state of the batch rows."""

    def __call__(self, x: Tensor, step: int) -> Tensor:
        return self.fc2(self.activation_fn(self.fc1(x)))


class LeanTransformerStep:
    """step(tokens [B], t) -> logits [B, V] of the token after position t,
    whose token is `tokens` (the decoder input, EOS at t = 0), t = 0, 1, ...
    in order; at most `max_len` steps; `keep(rows)` drops the other rows
    (ended samples) from the next steps on. Build it with `lean_step`."""

    def __init__(self, decoder, encoder_out, batch_size: int, max_len: int):
        self.decoder = decoder
        encoder, padding = None, None
        if encoder_out is not None and len(encoder_out["encoder_out"]) > 0:
            encoder = encoder_out["encoder_out"][0]
        if encoder_out is not None and len(encoder_out["encoder_padding_mask"]) > 0:
            padding = encoder_out["encoder_padding_mask"][0]
        self.positions = None
        if decoder.embed_positions is not None:
            # fairseq's positions of a prefix without padding: padding_idx + 1 + t
            prefix = torch.full((1, max_len), decoder.padding_idx + 1, dtype=torch.long,
                                device=decoder.embed_tokens.weight.device)
            self.positions = decoder.embed_positions(prefix)[0]
        # (normalize_before, layer norm, sublayer) in the order they apply
        self.sublayers = []
        for layer in decoder.layers:
            self.sublayers.append((layer.normalize_before, layer.self_attn_layer_norm,
                                   SelfAttention(layer.self_attn, batch_size, max_len)))
            if layer.encoder_attn is not None and encoder is not None:
                self.sublayers.append((layer.normalize_before, layer.encoder_attn_layer_norm,
                                       EncoderAttention(layer.encoder_attn, encoder, padding)))
            self.sublayers.append((layer.normalize_before, layer.final_layer_norm, FeedForward(layer)))
        self.output = Affine.of(decoder.output_projection)

    def keep(self, rows: Tensor):
        """Step only the batch rows `rows` (indices into the current rows)
        from now on: their caches are kept, the others' dropped."""
        for _, _, sublayer in self.sublayers:
            sublayer.keep(rows)

    def __call__(self, tokens: Tensor, step: int) -> Tensor:
        decoder = self.decoder
        x = decoder.embed_tokens(tokens)
        if decoder.embed_scale != 1.0:  # fairseq multiplies by 1.0 too: exact either way
            x = x * decoder.embed_scale
        if decoder.project_in_dim is not None:
            x = decoder.project_in_dim(x)
        if self.positions is not None:
            x += self.positions[step]
        if decoder.layernorm_embedding is not None:
            x = decoder.layernorm_embedding(x)
        for normalize_before, norm, sublayer in self.sublayers:
            if normalize_before:
                x = x + sublayer(norm(x), step)
            else:
                x = norm(x + sublayer(x, step))
        if decoder.layer_norm is not None:
            x = decoder.layer_norm(x)
        if decoder.project_out_dim is not None:
            x = decoder.project_out_dim(x)
        return self.output(x)


def lean_step(decoder, encoder_out, batch_size: int, max_len: int, banned=()):
    """A LeanTransformerStep of `decoder` for `batch_size` samples of at most
    `max_len` tokens that never draw the symbols `banned`, or None where
    `lean_refusal` says it would not reproduce fairseq's decoding."""
    if lean_refusal(decoder, banned) is not None:
        return None
    return LeanTransformerStep(decoder, encoder_out, batch_size, max_len)
