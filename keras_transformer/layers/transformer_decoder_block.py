import keras

from keras_transformer.layers.masks import get_keras_mask

from keras_transformer.layers.base import TransformerBlockBase


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerDecoderBlock(TransformerBlockBase):
    """One decoder layer: causal self-attention, cross-attention, feed-forward.

    The causal self-attention sees only earlier target positions; the
    cross-attention attends over the encoder output and never to its padding
    (the encoder padding mask, or the Keras mask of `encoder_sequence`).
    Residuals and LayerNorms are as in `TransformerEncoderBlock`.

    Caches for fast decoding (see `MultiHeadAttention` for the layout):
    - `self_attention_cache`: `(key_cache, value_cache)` buffers of shape
      (B, H, M, Dh) holding earlier steps' keys and values, from
      `init_self_attention_cache`, updated at
      `self_attention_cache_update_index`, the position of the first query.
    - `cross_attention_cache`: `(keys, values)` of shape (B, H, S, Dh) from
      `compute_cross_attention_cache(encoder_sequence)`, computed once per
      source; `encoder_sequence` may then be None.
    With a `self_attention_cache` the block returns
    `(outputs, updated_self_attention_cache)`; with
    `return_cross_attention_scores=True` (no caches, for inspection) it
    returns `(outputs, weights)`, the (B, H, T, S) cross-attention weights.

    Args:
        Those of `TransformerEncoderBlock`.

    Call arguments:
        decoder_sequence: (B, T, D).
        encoder_sequence: (B, S, De), or None with a cross-attention cache.
        decoder_padding_mask: optional (B, T); defaults to the Keras mask.
        encoder_padding_mask: optional (B, S); defaults to the Keras mask of
            `encoder_sequence`.
        self_attention_cache, self_attention_cache_update_index,
        cross_attention_cache: see above.
        self_attention_mask: optional boolean (B, T, T), or (B, T, M) over
            the self-attention cache; True where a query may attend. It
            narrows the causal mask, which always applies (beam search uses
            it to keep each beam to its own history).
        return_cross_attention_scores: also return the cross-attention
            weights; each row sums to 1 and is 0 at encoder padding.
        training: enables dropout.

    Returns:
        (B, T, D), `(outputs, self_attention_cache)` or `(outputs, weights)`.

    Example:
    >>> block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16)
    >>> block(keras.ops.ones((1, 3, 8)), keras.ops.ones((1, 5, 8))).shape
    (1, 3, 8)

    Reference:
        Vaswani et al., 2017, section 3.1 (decoder) and 3.2.3.
    """

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        hidden_dim = self._hidden_dim(decoder_sequence_shape)
        if encoder_sequence_shape is None:
            encoder_sequence_shape = decoder_sequence_shape
        self.self_attention = self._attention(hidden_dim, "self_attention")
        self.self_attention.build(decoder_sequence_shape, decoder_sequence_shape)
        self.self_attention_norm, self.self_attention_dropout = self._norm_and_dropout(
            decoder_sequence_shape, "self_attention"
        )
        self.cross_attention = self._attention(hidden_dim, "cross_attention")
        self.cross_attention.build(decoder_sequence_shape, encoder_sequence_shape)
        self.cross_attention_norm, self.cross_attention_dropout = self._norm_and_dropout(
            decoder_sequence_shape, "cross_attention"
        )
        self.feed_forward = self._feed_forward(decoder_sequence_shape)
        self.feed_forward_norm, self.feed_forward_dropout = self._norm_and_dropout(
            decoder_sequence_shape, "feed_forward"
        )

    def init_self_attention_cache(self, batch_size, max_length):
        """`(key_cache, value_cache)`, zeros of shape (B, H, max_length, Dh)."""
        return self.self_attention.init_cache(batch_size, max_length)

    def compute_cross_attention_cache(self, encoder_sequence):
        """Encoder `(keys, values)`, each of shape (B, H, S, Dh)."""
        return self.cross_attention.compute_cache(encoder_sequence)

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
        if encoder_sequence is None and cross_attention_cache is None:
            raise ValueError(
                f"{type(self).__name__} needs `encoder_sequence` or a "
                "`cross_attention_cache`; received neither."
            )
        if return_cross_attention_scores and cross_attention_cache is not None:
            raise ValueError(
                "`return_cross_attention_scores=True` cannot be combined with a "
                "`cross_attention_cache`; pass `encoder_sequence` to read the weights."
            )
        if decoder_padding_mask is None:
            decoder_padding_mask = get_keras_mask(decoder_sequence)
        if encoder_padding_mask is None and encoder_sequence is not None:
            encoder_padding_mask = get_keras_mask(encoder_sequence)
        x = decoder_sequence
        y = self._normalize_first(x, self.self_attention_norm)
        if self_attention_cache is None:
            y = self.self_attention(
                y,
                y,
                value_mask=decoder_padding_mask,
                attention_mask=self_attention_mask,
                use_causal_mask=True,
                training=training,
            )
        else:
            y, self_attention_cache = self.self_attention(
                y,
                y,
                value_mask=decoder_padding_mask,
                attention_mask=self_attention_mask,
                training=training,
                cache=self_attention_cache,
                cache_update_index=self_attention_cache_update_index,
            )
        x = self._add_and_normalize(
            x, y, self.self_attention_norm, self.self_attention_dropout, training
        )

        y = self._normalize_first(x, self.cross_attention_norm)
        weights = None
        if return_cross_attention_scores:
            y, weights = self.cross_attention(
                y,
                encoder_sequence,
                value_mask=encoder_padding_mask,
                return_attention_scores=True,
                training=training,
            )  # (B, T, D), (B, H, T, S)
        elif cross_attention_cache is None:
            y = self.cross_attention(
                y, encoder_sequence, value_mask=encoder_padding_mask, training=training
            )
        else:
            y, _ = self.cross_attention(
                y, value_mask=encoder_padding_mask, training=training, cache=cross_attention_cache
            )
        x = self._add_and_normalize(
            x, y, self.cross_attention_norm, self.cross_attention_dropout, training
        )

        y = self.feed_forward(self._normalize_first(x, self.feed_forward_norm), training=training)
        x = self._add_and_normalize(
            x, y, self.feed_forward_norm, self.feed_forward_dropout, training
        )
        if weights is not None:
            return x, weights
        if self_attention_cache is None:
            return x
        return x, self_attention_cache
