import keras

from keras_transformer.layers.masks import get_keras_mask
from keras import ops

from keras_transformer.layers.base import TransformerStackBase
from keras_transformer.layers.transformer_decoder_block import TransformerDecoderBlock
from keras_transformer.layers.validation import check_padding_mask, check_same_batch


def _check_sequences(layer_name, decoder_sequence, encoder_sequence, decoder_mask, encoder_mask):
    """Raises ValueError for masks or an encoder output that do not fit the
    decoder input, where the static shapes say so."""
    decoder_shape = decoder_sequence.shape
    check_padding_mask(
        layer_name, "decoder_padding_mask", decoder_mask, "decoder_sequence", decoder_shape
    )
    if encoder_sequence is not None:
        encoder_shape = encoder_sequence.shape
        check_same_batch(
            layer_name, "decoder_sequence", decoder_shape, "encoder_sequence", encoder_shape
        )
        check_padding_mask(
            layer_name, "encoder_padding_mask", encoder_mask, "encoder_sequence", encoder_shape
        )


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerDecoder(TransformerStackBase):
    """A stack of `num_layers` `TransformerDecoderBlock`s (section 3.1).

    With `normalize_first=True` a final LayerNorm follows the last block.

    Caches are tuples with one `(keys, values)` pair per block, in block
    order (the pairs of `TransformerDecoderBlock`), so that a decoding loop
    updates each buffer in place:
    - `self_attention_cache`: pairs of (B, H, M, Dh) zeros from
      `init_self_attention_cache(batch_size, max_length)`, written at
      `self_attention_cache_update_index` (the position of the first query).
    - `cross_attention_cache`: pairs of (B, H, S, Dh) from
      `compute_cross_attention_cache(encoder_sequence)`, once per source.
    With a `self_attention_cache` the call returns
    `(outputs, updated_self_attention_cache)`; with
    `return_cross_attention_scores=True`, `(outputs, weights)` with every
    block's weights stacked to (B, L, H, T, S).

    Args:
        num_layers: L, the number of blocks.
        **block_kwargs: the arguments of `TransformerDecoderBlock`.

    Call arguments:
        As `TransformerDecoderBlock`, with the per-block caches above.

    Returns:
        (B, T, D), or `(outputs, self_attention_cache)`.

    Example:
    >>> decoder = TransformerDecoder(2, num_heads=2, intermediate_dim=16)
    >>> decoder(keras.ops.ones((1, 3, 8)), keras.ops.ones((1, 5, 8))).shape
    (1, 3, 8)

    Reference:
        Vaswani et al., 2017, section 3.1.
    """

    block_class = TransformerDecoderBlock

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        for block in self.blocks:
            block.build(decoder_sequence_shape, encoder_sequence_shape)
        self._build_final_norm(decoder_sequence_shape)

    def init_self_attention_cache(self, batch_size, max_length):
        """One `(keys, values)` pair of (B, H, max_length, Dh) zeros per block."""
        return tuple(
            block.init_self_attention_cache(batch_size, max_length) for block in self.blocks
        )

    def compute_cross_attention_cache(self, encoder_sequence):
        """One pair of encoder `(keys, values)`, each (B, H, S, Dh), per block."""
        return tuple(block.compute_cross_attention_cache(encoder_sequence) for block in self.blocks)

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        self_attention_mask=None,
        return_cross_attention_scores=False,
        training=None,
    ):
        decoder_padding_mask, encoder_padding_mask = self._padding_masks(
            decoder_sequence, encoder_sequence, decoder_padding_mask, encoder_padding_mask
        )
        no_caches = (None,) * self.num_layers
        x, updated_caches, weights = decoder_sequence, [], []
        for block, self_cache, cross_cache in zip(
            self.blocks, self_attention_cache or no_caches, cross_attention_cache or no_caches
        ):
            outputs = block(
                x,
                encoder_sequence,
                decoder_padding_mask=decoder_padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                self_attention_cache=self_cache,
                self_attention_cache_update_index=self_attention_cache_update_index,
                cross_attention_cache=cross_cache,
                self_attention_mask=self_attention_mask,
                return_cross_attention_scores=return_cross_attention_scores,
                training=training,
            )
            if self_cache is None and not return_cross_attention_scores:
                x = outputs
            else:
                x, extra = outputs  # (B, T, D), a cache pair or (B, H, T, S) weights
                (weights if return_cross_attention_scores else updated_caches).append(extra)
        x = self._finish(x)
        if return_cross_attention_scores:
            return x, ops.stack(weights, axis=1)  # (B, T, D), (B, L, H, T, S)
        if self_attention_cache is None:
            return x
        return x, tuple(updated_caches)

    def _padding_masks(
        self, decoder_sequence, encoder_sequence, decoder_padding_mask, encoder_padding_mask
    ):
        """The given masks, else the inputs' Keras masks; checked against the inputs."""
        if decoder_padding_mask is None:
            decoder_padding_mask = get_keras_mask(decoder_sequence)
        if encoder_padding_mask is None and encoder_sequence is not None:
            encoder_padding_mask = get_keras_mask(encoder_sequence)
        _check_sequences(
            type(self).__name__,
            decoder_sequence,
            encoder_sequence,
            decoder_padding_mask,
            encoder_padding_mask,
        )
        return decoder_padding_mask, encoder_padding_mask
