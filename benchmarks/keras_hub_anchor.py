"""The benchmarks' anchor: a seq2seq model composed from KerasHub layers, and
greedy decoding with KerasHub's own caches.

`keras_hub_layers` makes the parts (as in the keras.io translation example:
`TokenAndPositionEmbedding`, `TransformerEncoder`, `TransformerDecoder`);
`keras_hub_greedy_function` decodes with them the way KerasHub's seq2seq
`generate` does (BART): stacked (B, L, 2, T, H, Dh) caches sliced per layer
and re-stacked each step, the cross-attention cache filled by the first step,
and a `while_loop` under `tf.function(jit_compile=True)`. Unlike BART, the
cross-attention cache is a loop constant rather than re-stacked state, which
if anything favours KerasHub.
"""

import keras_hub
import tensorflow as tf


def keras_hub_layers(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    *,
    num_layers: int,
    hidden_dim: int,
    num_heads: int,
    intermediate_dim: int,
    max_sequence_length: int,
    dropout: float = 0.0,
    mask_zero: bool = False,
) -> dict:
    """The anchor's embeddings and blocks, unbuilt, in a dict."""
    return {
        "encoder_embedding": keras_hub.layers.TokenAndPositionEmbedding(
            source_vocabulary_size, max_sequence_length, hidden_dim, mask_zero=mask_zero
        ),
        "decoder_embedding": keras_hub.layers.TokenAndPositionEmbedding(
            target_vocabulary_size, max_sequence_length, hidden_dim, mask_zero=mask_zero
        ),
        "encoder_layers": [
            keras_hub.layers.TransformerEncoder(intermediate_dim, num_heads, dropout=dropout)
            for _ in range(num_layers)
        ],
        "decoder_layers": [
            keras_hub.layers.TransformerDecoder(intermediate_dim, num_heads, dropout=dropout)
            for _ in range(num_layers)
        ],
    }


def keras_hub_forward(hub: dict, encoder_token_ids, decoder_token_ids):
    """The decoder's outputs (B, T, D) of the parts in `hub` for the ids
    (B, S) and (B, T): builds the layers on first call."""
    x = hub["encoder_embedding"](encoder_token_ids)
    for layer in hub["encoder_layers"]:
        x = layer(x)
    y = hub["decoder_embedding"](decoder_token_ids)
    for layer in hub["decoder_layers"]:
        y = layer(y, x)
    return y


def keras_hub_greedy_function(hub: dict, max_length: int, project, start_token_id: int,
                              end_token_id: int | None = None):
    """A compiled greedy search of the anchor: source ids (B, S) -> tokens
    (B, max_length), never the padding id 0.

    Args:
        hub: the parts `keras_hub_layers` makes, built.
        max_length: tokens generated per row.
        project: decoder outputs (B, 1, D) -> logits (B, 1, V).
        start_token_id: the decoder's first input.
        end_token_id: if given, a row that generated it gets 0 after it, and
            the loop stops once every row has; otherwise every row runs
            `max_length` steps.
    """
    embedding, decoder_layers = hub["decoder_embedding"], hub["decoder_layers"]
    num_layers = len(decoder_layers)
    num_heads = decoder_layers[0].num_heads
    head_dim = embedding.embedding_dim // num_heads

    def call_with_cache(token_ids, index, encoder_outputs, padding_mask, self_cache,
                        cross_cache, cross_cache_update_index):
        x = embedding(token_ids[:, None], start_index=index)  # (B, 1, D)
        self_caches, cross_caches = [], []
        for i, layer in enumerate(decoder_layers):
            x, layer_self_cache, layer_cross_cache = layer(
                x,
                encoder_sequence=encoder_outputs,
                encoder_padding_mask=padding_mask,
                self_attention_cache=self_cache[:, i],
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache[:, i],
                cross_attention_cache_update_index=cross_cache_update_index,
            )
            self_caches.append(layer_self_cache)
            cross_caches.append(layer_cross_cache)
        logits = tf.cast(project(x)[:, 0], "float32")  # (B, V), as ours under mixed precision
        logits = tf.where(tf.range(tf.shape(logits)[-1]) == 0, -1e9, logits)
        next_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return next_ids, tf.stack(self_caches, axis=1), tf.stack(cross_caches, axis=1)

    def is_end(ids):
        return tf.zeros_like(ids, bool) if end_token_id is None else ids == end_token_id

    def generate(encoder_token_ids):
        batch_size, source_length = encoder_token_ids.shape
        padding_mask = encoder_token_ids != 0
        x = hub["encoder_embedding"](encoder_token_ids)
        for layer in hub["encoder_layers"]:
            x = layer(x, padding_mask=padding_mask)
        cache_shape = (batch_size, num_layers, 2, max_length, num_heads, head_dim)
        cross_shape = (batch_size, num_layers, 2, source_length, num_heads, head_dim)
        next_ids, self_cache, cross_cache = call_with_cache(
            tf.fill((batch_size,), start_token_id), 0, x, padding_mask,
            tf.zeros(cache_shape), tf.zeros(cross_shape), 0,
        )
        tokens = tf.zeros((batch_size, max_length), tf.int32)
        tokens = tf.where(tf.range(max_length) == 0, next_ids[:, None], tokens)

        def keep_going(index, token_ids, finished, tokens, self_cache):
            return tf.logical_and(index < max_length, tf.logical_not(tf.reduce_all(finished)))

        def body(index, token_ids, finished, tokens, self_cache):
            next_ids, self_cache, _ = call_with_cache(
                token_ids, index, x, padding_mask, self_cache, cross_cache, None
            )
            next_ids = tf.where(finished, 0, next_ids)
            tokens = tf.where(tf.range(max_length) == index, next_ids[:, None], tokens)
            return index + 1, next_ids, finished | is_end(next_ids), tokens, self_cache

        return tf.while_loop(
            keep_going, body, (1, next_ids, is_end(next_ids), tokens, self_cache)
        )[3]

    return tf.function(generate, jit_compile=True)
