"""The non-padding positions of a batch packed into rows: the [*, V] work of
an output layer, its softmax and the losses over it, done where there are
tokens only (padding is often a third of a batch)."""

from torch import Tensor

from fairseq_ot.modules.sampling import decoder_input_key


def unpack(values: Tensor, mask: Tensor) -> Tensor:
    """[N, ...] values of the True positions of `mask` [B, T], in the order
    tensor[mask] takes them, -> [B, T, ...], zeros elsewhere."""
    full = values.new_zeros(mask.shape + values.shape[1:])
    return full.masked_scatter(mask.view(mask.shape + (1,) * (values.dim() - 1)), values)


def packed_logits(model, net_input, mask: Tensor, encoder_out=None) -> Tensor:
    """A fairseq model's next-token logits [N, V] at the True positions of
    `mask` [B, T] of its decoder input: `model`'s decoder features, then its
    output layer on those rows alone, as model(**net_input)[0][mask] (the
    same operators; row subsets of a matrix product may round differently).
    Encoder-decoders encode the sources unless `encoder_out` is given."""
    decoder = model.decoder
    if decoder_input_key(net_input) == "src_tokens":  # language model
        features, _ = decoder.extract_features(net_input["src_tokens"], encoder_out=None)
    else:
        if encoder_out is None:
            encoder_out = model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"])
        features, _ = decoder.extract_features(net_input["prev_output_tokens"], encoder_out=encoder_out)
    return decoder.output_layer(features[mask])
