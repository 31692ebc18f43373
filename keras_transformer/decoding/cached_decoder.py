"""One decoding step of a seq2seq Transformer with key/value caches.

Shape letters: B batch (times beams in beam search), S source length,
L the length of the self-attention cache (the most steps decoded),
D hidden dim, H heads, Dh head dim, V target vocabulary.
"""

import keras
from keras import ops

from keras_transformer.layers import (
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
)

_REQUIRED_LAYERS = {
    "encoder_embedding": TokenAndPositionEmbedding,
    "encoder": TransformerEncoder,
    "decoder_embedding": TokenAndPositionEmbedding,
    "decoder": TransformerDecoder,
}


def _find_layer(model, name):
    names = [layer.name for layer in model.layers]
    return model.get_layer(name) if name in names else None


def _pairs(caches):
    """The `(keys, values)` pairs of a flat tuple of caches, block by block."""
    return tuple(zip(caches[0::2], caches[1::2]))


class CachedSeq2SeqDecoder:
    """The encoder pass and a one-token decoder step of a seq2seq Transformer.

    Wraps the layers of a model from `build_seq2seq_transformer`, found by
    name (also after a `.keras` reload). Every method is a pure function of
    tensors, so the searches can run them inside one compiled loop and the
    export can trace them as an encoder signature and a step signature.

    - `encode` runs the encoder once (no dropout; padding mask = ids != 0)
      and projects the keys and values of every cross-attention once.
    - `init_self_attention_caches` gives fixed-length buffers per block.
    - `step` embeds one token per row at position `index`, runs the blocks
      with their caches (the keys and values of the new token are written at
      `index`; earlier positions are attended, later ones never), and
      returns float32 logits. It calls the decoder blocks directly with
      their own caches rather than the stacked caches of
      `TransformerDecoder`, which would copy every cache at every step.

    Caches are flat tuples of tensors, two per decoder block: its keys, then
    its values (the `(key_cache, value_cache)` pair of `MultiHeadAttention`),
    of shape (B, H, L, Dh) for self-attention and (B, H, S, Dh) for
    cross-attention. Each is its own loop variable, which XLA updates in
    place, and the export names each one.

    Args:
        model: a `keras.Model` from `build_seq2seq_transformer`.

    Example:
    >>> model = build_seq2seq_transformer(30, 30, num_layers=1, hidden_dim=16,
    ...     num_heads=2, intermediate_dim=32)
    >>> decoder = CachedSeq2SeqDecoder(model)
    >>> source = keras.ops.array([[5, 6, 7, 0]], "int32")
    >>> cross_caches, source_mask = decoder.encode(source)
    >>> caches = decoder.init_self_attention_caches(1, 8)
    >>> token = keras.ops.array([1], "int32")
    >>> logits, caches = decoder.step(token, 0, caches, cross_caches, source_mask)
    >>> tuple(logits.shape)
    (1, 30)
    """

    def __init__(self, model: keras.Model):
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Expected a `keras.Model` from `build_seq2seq_transformer`, "
                f"received {type(model).__name__}."
            )
        for name, layer_class in _REQUIRED_LAYERS.items():
            layer = _find_layer(model, name)
            if not isinstance(layer, layer_class):
                received = "no such layer" if layer is None else type(layer).__name__
                raise ValueError(
                    f"Decoding needs a model from `build_seq2seq_transformer` with a "
                    f"`{layer_class.__name__}` layer named '{name}'; model "
                    f"'{model.name}' has {received}. Its layers are "
                    f"{[layer.name for layer in model.layers]}."
                )
        self.encoder_embedding = model.get_layer("encoder_embedding")
        self.encoder = model.get_layer("encoder")
        self.decoder_embedding = model.get_layer("decoder_embedding")
        decoder = model.get_layer("decoder")
        self.blocks = tuple(decoder.blocks)
        self.final_norm = decoder.final_norm
        self.logits_layer = _find_layer(model, "logits")
        self.vocabulary_size = self.decoder_embedding.vocabulary_size
        self.source_vocabulary_size = self.encoder_embedding.vocabulary_size
        self.max_decoding_length = None
        if self.decoder_embedding.position_encoding == "learned":
            self.max_decoding_length = self.decoder_embedding.sequence_length
        self.max_source_length = None
        if self.encoder_embedding.position_encoding == "learned":
            self.max_source_length = self.encoder_embedding.sequence_length

    def encode(self, encoder_token_ids):
        """Runs the encoder and projects the cross-attention keys and values.

        Args:
            encoder_token_ids: int32 (B, S), 0 = padding.

        Returns:
            `(cross_attention_caches, encoder_padding_mask)`: a tuple of
            (B, H, S, Dh) keys and values per block, and the boolean (B, S) mask
            `encoder_token_ids != 0`.
        """
        encoder_padding_mask = ops.not_equal(encoder_token_ids, 0)  # (B, S)
        x = self.encoder_embedding(encoder_token_ids)  # (B, S, D)
        x = self.encoder(x, padding_mask=encoder_padding_mask)  # (B, S, D)
        caches = tuple(
            part for block in self.blocks for part in block.compute_cross_attention_cache(x)
        )
        return caches, encoder_padding_mask

    def init_self_attention_caches(self, batch_size, max_length):
        """Zeros of shape (B, H, max_length, Dh), keys and values per block."""
        return tuple(
            part
            for block in self.blocks
            for part in block.init_self_attention_cache(batch_size, max_length)
        )

    def step(
        self,
        token_ids,
        index,
        self_attention_caches,
        cross_attention_caches,
        encoder_padding_mask,
    ):
        """Next-token logits for one new token per row.

        Args:
            token_ids: int32 (B,), the tokens at position `index`; must not
                be 0 (padding) for rows whose output is used.
            index: int32 scalar, the position of `token_ids` (0 for the
                start token).
            self_attention_caches: flat tuple of (B, H, L, Dh), positions
                `< index` filled.
            cross_attention_caches: flat tuple of (B, H, S, Dh) from `encode`.
            encoder_padding_mask: boolean (B, S) from `encode`.

        Returns:
            `(logits, self_attention_caches)`: float32 (B, V) logits of the
            token at position `index + 1`, and the caches with position
            `index` written.
        """
        x = self.decoder_embedding(token_ids[:, None], start_index=index)  # (B, 1, D)
        x, caches = self._blocks(
            x, index, self_attention_caches, cross_attention_caches, encoder_padding_mask
        )  # (B, 1, D)
        return self._logits(x[:, 0]), caches

    def beam_step(
        self,
        token_ids,
        index,
        history,
        self_attention_caches,
        cross_attention_caches,
        encoder_padding_mask,
    ):
        """Next-token logits for the K beams of every source row.

        The K beams of a row run as one group of K queries, so they share
        the row's cross-attention cache, and their self-attention caches
        are never reordered: beam slot k writes its step-t keys and values
        at cache position `t * K + k`, and `history` says which slot's
        entry each beam attends to at every earlier step.

        Args:
            token_ids: int32 (B, K), the beams' tokens at position `index`.
            index: int32 scalar, the step (0 for the start token).
            history: int32 (B, K, L): `history[b, k, t]` is the slot whose
                step-t entry is in beam k's prefix, for `t < index`.
            self_attention_caches: flat tuple of (B, H, L * K, Dh) from
                `init_self_attention_caches(B, L * K)`, steps `< index`
                filled.
            cross_attention_caches, encoder_padding_mask: from `encode`,
                one per source row (B, not B * K).

        Returns:
            `(logits, self_attention_caches)`: float32 (B * K, V) logits of
            the beams' next tokens, and the caches with step `index` written.
        """
        batch_size, beam_size = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        max_length = ops.shape(history)[-1]
        x = self.decoder_embedding(ops.reshape(token_ids, (-1, 1)), start_index=index)
        x = ops.reshape(x, (batch_size, beam_size, -1))  # (B, K, D)
        steps, slots = ops.arange(max_length), ops.arange(beam_size)  # (L,), (K,)
        earlier = ops.logical_and(
            ops.less(steps, index)[:, None], ops.equal(history[..., None], slots)
        )  # (B, K, L, K)
        own = ops.logical_and(
            ops.equal(steps, index)[:, None], ops.equal(slots[:, None, None], slots)
        )  # (K, L, K)
        mask = ops.reshape(
            ops.logical_or(earlier, own), (batch_size, beam_size, max_length * beam_size)
        )  # (B, K, L * K): query k, cache position t * K + j
        x, caches = self._blocks(
            x, index * beam_size, self_attention_caches, cross_attention_caches,
            encoder_padding_mask, mask,
        )  # (B, K, D)
        return self._logits(ops.reshape(x, (batch_size * beam_size, -1))), caches

    def _blocks(
        self,
        x,
        cache_index,
        self_attention_caches,
        cross_attention_caches,
        encoder_padding_mask,
        self_attention_mask=None,
    ):
        """Runs the decoder blocks on (B, T, D) queries, writing their keys
        and values at `cache_index`; returns `(x, updated caches)`."""
        updated_caches = []
        for block, self_cache, cross_cache in zip(
            self.blocks, _pairs(self_attention_caches), _pairs(cross_attention_caches)
        ):
            x, self_cache = block(
                x,
                encoder_padding_mask=encoder_padding_mask,
                self_attention_cache=self_cache,
                self_attention_cache_update_index=cache_index,
                cross_attention_cache=cross_cache,
                self_attention_mask=self_attention_mask,
            )  # (B, T, D), 2 x (B, H, L, Dh)
            updated_caches.extend(self_cache)
        return x, tuple(updated_caches)

    def _logits(self, x):
        """Float32 (N, V) logits of (N, D) decoder outputs."""
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.logits_layer is not None:
            return ops.cast(self.logits_layer(x), "float32")
        # The tied projection `decoder_embedding(x, reverse=True)`, written as
        # (V, D) @ (D, N): a plain matrix product on the stored table. XLA on
        # CPU fuses the transposed table of `x @ table^T` into an unvectorized
        # elementwise loop when N = 1, which made it the slowest op of a step.
        table = ops.cast(self.decoder_embedding.embeddings, x.dtype)  # (V, D)
        logits = ops.transpose(ops.matmul(table, ops.transpose(x)))  # (N, V)
        return ops.cast(logits, "float32")
