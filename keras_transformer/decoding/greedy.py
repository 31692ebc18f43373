"""Greedy decoding with key/value caches, compiled with XLA.

Shape letters: B batch, S source length, L max_length, V target vocabulary.
"""

import keras
from keras import ops

from keras_transformer.decoding.cached_decoder import CachedSeq2SeqDecoder
from keras_transformer.decoding.search_utils import (
    Tensor,
    argmax,
    check_encoder_token_ids,
    check_settings,
    compiled_search,
    exclude_padding,
    is_end,
    model_decoder,
    write_position,
)


def token_loop(
    decoder: CachedSeq2SeqDecoder,
    encoder_token_ids: Tensor,
    choose_tokens,
    *,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
) -> tuple[Tensor, Tensor]:
    """One token per row per step, as graph code: encoder once, then a fixed-shape loop.

    Written with `keras.ops`: under TensorFlow it traces to a `tf.while_loop`
    (XLA, TFLite WHILE), under JAX to a `lax.while_loop`; under torch it runs
    as a Python loop.

    Args:
        decoder: the model's `CachedSeq2SeqDecoder`.
        encoder_token_ids: int32 (B, S).
        choose_tokens: `(logits, index) -> token ids`, float (B, V) logits
            with padding excluded to int32 (B,); `index` is the step.
        start_token_id, end_token_id, max_length: as `greedy_search`.

    Returns:
        `(tokens, num_steps)`: int32 (B, L) tokens, 0 after each row's end
        token and in the columns never reached, and the int32 number of
        steps run (the loop stops early once every row has ended).
    """
    batch_size = ops.shape(encoder_token_ids)[0]
    cross_attention_caches, encoder_padding_mask = decoder.encode(encoder_token_ids)

    def keep_going(index, token_ids, finished, tokens, caches):
        return ops.logical_and(ops.less(index, max_length), ops.logical_not(ops.all(finished)))

    def decode_one(index, token_ids, finished, tokens, caches):
        logits, caches = decoder.step(
            token_ids, index, caches, cross_attention_caches, encoder_padding_mask
        )  # (B, V)
        token_ids = choose_tokens(exclude_padding(logits), index)  # (B,)
        token_ids = ops.where(finished, 0, token_ids)
        tokens = write_position(tokens, index, token_ids)  # (B, L)
        finished = ops.logical_or(finished, is_end(token_ids, end_token_id))
        return index + 1, token_ids, finished, tokens, caches

    num_steps, _, _, tokens, _ = ops.while_loop(
        keep_going,
        decode_one,
        (
            ops.convert_to_tensor(0, "int32"),
            ops.full((batch_size,), start_token_id, dtype="int32"),
            ops.zeros((batch_size,), "bool"),
            ops.zeros((batch_size, max_length), "int32"),
            decoder.init_self_attention_caches(batch_size, max_length),
        ),
    )
    return tokens, num_steps


def greedy_loop(
    decoder: CachedSeq2SeqDecoder,
    encoder_token_ids: Tensor,
    *,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
) -> tuple[Tensor, Tensor]:
    """The greedy search as graph code: `token_loop` taking the most likely token.

    Args:
        decoder: the model's `CachedSeq2SeqDecoder`.
        encoder_token_ids: int32 (B, S).
        start_token_id, end_token_id, max_length: as `greedy_search`.

    Returns:
        `(tokens, num_steps)` as `token_loop`.

    Example:
    >>> decoder = CachedSeq2SeqDecoder(model)
    >>> decode = tf.function(lambda ids: greedy_loop(
    ...     decoder, ids, start_token_id=1, end_token_id=2, max_length=10))
    >>> tokens, num_steps = decode(tf.constant([[5, 6, 7, 0]]))
    >>> tokens.shape
    TensorShape([1, 10])
    """
    return token_loop(
        decoder,
        encoder_token_ids,
        lambda logits, index: argmax(logits),
        start_token_id=start_token_id,
        end_token_id=end_token_id,
        max_length=max_length,
    )


def greedy_search(
    model: keras.Model,
    encoder_token_ids,
    *,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
) -> Tensor:
    """Translates a batch by taking the most likely token at every step.

    Runs the encoder once, then decodes all rows together, one token per
    step, with a key/value cache per decoder block, in one XLA-compiled
    loop (compiled once per model, settings and input shape: with
    `tf.function(jit_compile=True)` under TensorFlow, `jax.jit` under JAX;
    under torch the loop runs eagerly). The padding
    id 0 is never generated. Rows are independent: padding in the source
    batch does not change any row's result.

    Args:
        model: a model from `build_seq2seq_transformer` (also reloaded from
            a `.keras` file).
        encoder_token_ids: int (B, S) source token ids, 0 = padding; ids
            outside the source vocabulary raise a ValueError.
        start_token_id: the token that starts every target, not returned.
        end_token_id: the token that ends a target, or None to always
            generate `max_length` tokens.
        max_length: the most tokens to generate per row (the end token
            counts).

    Returns:
        int32 (B, T) token ids, T <= max_length the length of the longest
        row. A row holds its tokens up to and including its end token,
        then 0 (padding).

    Example:
    >>> model = build_seq2seq_transformer(30, 30, num_layers=1, hidden_dim=16,
    ...     num_heads=2, intermediate_dim=32)
    >>> source = np.array([[5, 6, 7, 0], [8, 9, 10, 11]], "int32")
    >>> tokens = greedy_search(model, source, start_token_id=1, end_token_id=2,
    ...     max_length=10)
    >>> tokens.shape[0], tokens.shape[1] <= 10
    (2, True)
    """
    decoder = model_decoder(model)
    encoder_token_ids = check_encoder_token_ids(encoder_token_ids, decoder)
    check_settings(decoder, start_token_id, end_token_id, max_length)
    search = compiled_search(
        model,
        greedy_loop,
        start_token_id=start_token_id,
        end_token_id=end_token_id,
        max_length=max_length,
    )
    tokens, num_steps = search(encoder_token_ids)
    return tokens[:, :num_steps]
