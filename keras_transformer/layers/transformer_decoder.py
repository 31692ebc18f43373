import keras

from keras_transformer.layers.masks import get_keras_mask
from keras import ops

from keras_transformer.layers.base import TransformerStackBase
from keras_transformer.layers.transformer_decoder_block import TransformerDecoderBlock
from keras_transformer.layers.validation import check_padding_mask, check_same_batch


def _stack_caches(caches):
    """Per-block `(keys, values)` pairs -> one pair stacked along axis 1."""
    return tuple(ops.stack(parts, axis=1) for parts in zip(*caches))


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


def _block_cache(cache, index):
    """The `(keys, values)` of block `index` from a stacked pair, or None."""
    return None if cache is None else tuple(part[:, index] for part in cache)


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerDecoder(TransformerStackBase):
    """A stack of `num_layers` `TransformerDecoderBlock`s (section 3.1).

    With `normalize_first=True` a final LayerNorm follows the last block.

    Caches are `(keys, values)` pairs that stack the per-block keys and
    values along axis 1 (L = `num_layers`):
    - `self_attention_cache`: two (B, L, H, max_length, Dh), zeros from
      `init_self_attention_cache(batch_size, max_length)`, written at
      `self_attention_cache_update_index` (the position of the first query).
    - `cross_attention_cache`: two (B, L, H, S, Dh) from
      `compute_cross_attention_cache(encoder_sequence)`, once per source.
    With a `self_attention_cache` the call returns
    `(outputs, updated_self_attention_cache)`.

    Args:
        num_layers: L, the number of blocks.
        **block_kwargs: the arguments of `TransformerDecoderBlock`.

    Call arguments:
        As `TransformerDecoderBlock`, with the stacked caches above.

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
        """`(keys, values)`, zeros of shape (B, L, H, max_length, Dh)."""
        caches = [block.init_self_attention_cache(batch_size, max_length) for block in self.blocks]
        return _stack_caches(caches)

    def compute_cross_attention_cache(self, encoder_sequence):
        """Encoder `(keys, values)` of every block, each (B, L, H, S, Dh)."""
        caches = [block.compute_cross_attention_cache(encoder_sequence) for block in self.blocks]
        return _stack_caches(caches)

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        training=None,
    ):
        decoder_padding_mask, encoder_padding_mask = self._padding_masks(
            decoder_sequence, encoder_sequence, decoder_padding_mask, encoder_padding_mask
        )
        x = decoder_sequence
        updated_caches = []
        for i, block in enumerate(self.blocks):
            outputs = block(
                x,
                encoder_sequence,
                decoder_padding_mask=decoder_padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                self_attention_cache=_block_cache(self_attention_cache, i),
                self_attention_cache_update_index=self_attention_cache_update_index,
                cross_attention_cache=_block_cache(cross_attention_cache, i),
                training=training,
            )
            if self_attention_cache is None:
                x = outputs
            else:
                x, block_cache = outputs
                updated_caches.append(block_cache)
        x = self._finish(x)
        if self_attention_cache is None:
            return x
        return x, _stack_caches(updated_caches)

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

    def call_with_cross_attention_scores(
        self,
        decoder_sequence,
        encoder_sequence,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
    ):
        """The inference pass of `call`, also returning every block's
        cross-attention weights (see
        `TransformerDecoderBlock.call_with_cross_attention_scores`).

        Returns:
            `(outputs (B, T, D), weights (B, L, H, T, S))`, blocks in order.

        Example:
        >>> decoder = TransformerDecoder(2, num_heads=2, intermediate_dim=16)
        >>> x, y = keras.ops.ones((1, 3, 8)), keras.ops.ones((1, 5, 8))
        >>> _ = decoder(x, y)  # builds the decoder
        >>> outputs, weights = decoder.call_with_cross_attention_scores(x, y)
        >>> tuple(weights.shape)
        (1, 2, 2, 3, 5)
        """
        decoder_padding_mask, encoder_padding_mask = self._padding_masks(
            decoder_sequence, encoder_sequence, decoder_padding_mask, encoder_padding_mask
        )
        x = decoder_sequence
        weights = []
        for block in self.blocks:
            x, block_weights = block.call_with_cross_attention_scores(
                x, encoder_sequence, decoder_padding_mask, encoder_padding_mask
            )  # (B, T, D), (B, H, T, S)
            weights.append(block_weights)
        return self._finish(x), ops.stack(weights, axis=1)  # (B, T, D), (B, L, H, T, S)

    def compute_output_spec(self, decoder_sequence, *args, self_attention_cache=None, **kwargs):
        outputs = keras.KerasTensor(decoder_sequence.shape, self.compute_dtype)
        if self_attention_cache is None:
            return outputs
        return outputs, tuple(
            keras.KerasTensor(part.shape, part.dtype) for part in self_attention_cache
        )
