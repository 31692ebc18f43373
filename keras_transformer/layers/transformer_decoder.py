import keras

from keras_transformer.layers.masks import get_keras_mask
from keras import ops

from keras_transformer.layers.base import TransformerStackBase
from keras_transformer.layers.transformer_decoder_block import TransformerDecoderBlock


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerDecoder(TransformerStackBase):
    """A stack of `num_layers` `TransformerDecoderBlock`s (section 3.1).

    With `normalize_first=True` a final LayerNorm follows the last block.

    Caches stack the per-block caches along axis 1 (L = `num_layers`):
    - `self_attention_cache`: (B, L, 2, max_length, H, Dh), zeros from
      `init_self_attention_cache(batch_size, max_length)`, written at
      `self_attention_cache_update_index` (the position of the first query).
    - `cross_attention_cache`: (B, L, 2, S, H, Dh) from
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
        """Zeros of shape (B, L, 2, max_length, H, Dh)."""
        caches = [block.init_self_attention_cache(batch_size, max_length) for block in self.blocks]
        return ops.stack(caches, axis=1)

    def compute_cross_attention_cache(self, encoder_sequence):
        """Encoder keys and values of every block, (B, L, 2, S, H, Dh)."""
        caches = [block.compute_cross_attention_cache(encoder_sequence) for block in self.blocks]
        return ops.stack(caches, axis=1)

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
        if decoder_padding_mask is None:
            decoder_padding_mask = get_keras_mask(decoder_sequence)
        if encoder_padding_mask is None and encoder_sequence is not None:
            encoder_padding_mask = get_keras_mask(encoder_sequence)
        x = decoder_sequence
        updated_caches = []
        for i, block in enumerate(self.blocks):
            outputs = block(
                x,
                encoder_sequence,
                decoder_padding_mask=decoder_padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                self_attention_cache=(
                    None if self_attention_cache is None else self_attention_cache[:, i]
                ),
                self_attention_cache_update_index=self_attention_cache_update_index,
                cross_attention_cache=(
                    None if cross_attention_cache is None else cross_attention_cache[:, i]
                ),
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
        return x, ops.stack(updated_caches, axis=1)

    def compute_output_spec(self, decoder_sequence, *args, self_attention_cache=None, **kwargs):
        outputs = keras.KerasTensor(decoder_sequence.shape, self.compute_dtype)
        if self_attention_cache is None:
            return outputs
        return outputs, keras.KerasTensor(
            self_attention_cache.shape, self_attention_cache.dtype
        )
