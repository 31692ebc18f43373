"""Beam search with the GNMT length penalty, key/value caches and XLA.

Shape letters: see `keras_transformer` (B, K, S, M, V).
"""

from keras import ops

from keras_transformer.decoding.search_utils import (
    EXCLUDED_LOGIT,
    Tensor,
    check_search,
    compiled_search,
    is_end,
    write_position,
)
from keras_transformer.layers.validation import check_number, check_positive_int
from keras_transformer.models import Seq2SeqTransformer


def check_beam_settings(
    beam_size: int, length_penalty: float, vocabulary_size: int | None = None
) -> None:
    """Raises ValueError unless beam_size >= 1 (and < V when V is given) and
    length_penalty is a number."""
    check_positive_int("beam_size", beam_size)
    if vocabulary_size is not None and beam_size >= vocabulary_size:
        raise ValueError(
            f"`beam_size` must be below the target vocabulary size ({vocabulary_size}, "
            f"of which id 0 is padding). Received: beam_size={beam_size}"
        )
    check_number("length_penalty", length_penalty, meaning="alpha, 0.6 in the paper")


def length_penalty_divisor(lengths, alpha):
    """The GNMT length penalty `((5 + length) / 6) ** alpha` of int lengths,
    as float32; a hypothesis scores `log_prob / length_penalty_divisor`."""
    return ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, alpha)


def take_per_row(x, indices):
    """`x[row, indices[row]]` for every row: (B, N, ...) and int32 (B, K)
    indices give (B, K, ...); `tf.gather(x, indices, batch_dims=1)` written
    as one gather on the flattened rows, which every backend and TFLite
    support."""
    batch_size, num_items = ops.shape(x)[0], ops.shape(x)[1]
    flat_x = ops.reshape(x, (-1,) + tuple(x.shape[2:]))  # (B * N, ...)
    row_offsets = ops.arange(batch_size, dtype="int32")[:, None] * num_items  # (B, 1)
    flat_indices = ops.reshape(indices + row_offsets, (-1,))  # (B * K,)
    taken = ops.take(flat_x, flat_indices, axis=0)  # (B * K, ...)
    return ops.reshape(taken, ops.shape(indices) + tuple(x.shape[2:]))


def _beam_candidates(log_probs, finished, logits, beam_size):
    """The K best (beam, next token) candidates of every beam.

    An unfinished beam extends with its K most likely tokens (never
    padding); a finished beam has one candidate, itself, written as the
    padding token 0 at no cost, and K - 1 excluded ones.

    Args:
        log_probs: (B, K) total log-probabilities of the beams.
        finished: boolean (B, K).
        logits: float32 (B * K, V) next-token logits of the beams.
        beam_size: K.

    Returns:
        `(candidates, token_ids)`: (B, K, K) total log-probabilities,
        EXCLUDED_LOGIT where not allowed, and their int32 (B, K, K) tokens.
    """
    batch_size = ops.shape(log_probs)[0]
    is_padding = ops.equal(ops.arange(ops.shape(logits)[-1]), 0)  # (V,)
    best_logits, token_ids = ops.top_k(ops.where(is_padding, EXCLUDED_LOGIT, logits), k=beam_size)
    step_log_probs = best_logits - ops.logsumexp(logits, axis=-1, keepdims=True)  # (B * K, K)
    shape = (batch_size, beam_size, beam_size)
    step_log_probs = ops.reshape(step_log_probs, shape)
    token_ids = ops.reshape(ops.cast(token_ids, "int32"), shape)
    is_first = ops.equal(ops.arange(beam_size), 0)  # (K,)
    kept = ops.where(is_first, log_probs[..., None], EXCLUDED_LOGIT)  # (B, K, K)
    candidates = ops.where(finished[..., None], kept, log_probs[..., None] + step_log_probs)
    token_ids = ops.where(finished[..., None], 0, token_ids)
    return candidates, token_ids


def beam_attention_mask(history, index):
    """Which self-attention cache positions each beam attends to at step `index`.

    The K beams of a row share one cache and are never reordered: beam
    slot k writes its step-t keys and values at cache position `t * K + k`,
    and `history[b, k, t]` is the slot whose step-t entry is in beam k's
    prefix. A beam attends to those entries for `t < index`, and to its own
    entry at `index`.

    Args:
        history: int32 (B, K, M).
        index: int32 scalar, the step.

    Returns:
        Boolean (B, K, M * K): query k, cache position t * K + j.
    """
    batch_size, beam_size, max_length = ops.shape(history)
    steps, slots = ops.arange(max_length), ops.arange(beam_size)  # (M,), (K,)
    earlier = ops.logical_and(
        ops.less(steps, index)[:, None], ops.equal(history[..., None], slots)
    )  # (B, K, M, K)
    own = ops.logical_and(
        ops.equal(steps, index)[:, None], ops.equal(slots[:, None, None], slots)
    )  # (K, M, K)
    return ops.reshape(
        ops.logical_or(earlier, own), (batch_size, beam_size, max_length * beam_size)
    )


def beam_loop(
    model: Seq2SeqTransformer,
    encoder_token_ids: Tensor,
    *,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
    beam_size: int,
    length_penalty: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """The beam search as graph code: encoder once, then a fixed-shape loop.

    The encoder and the cross-attention keys and values run once per
    source row, and its K beams share them (the decoder blocks group the
    beams' cross-attention queries per source). Each step scores the
    candidates of a row by `log_prob / length_penalty_divisor(length)`,
    keeps the best K (finished beams compete with their fixed score), and
    reorders the beams' tokens; the self-attention caches stay in place
    (see `beam_attention_mask`). Only the K best
    tokens of each beam can be among the row's K best candidates, since
    one beam's candidates share its length penalty, so each step ranks
    K * K candidates rather than K * V.

    Args:
        model: a `Seq2SeqTransformer`.
        encoder_token_ids: int32 (B, S).
        start_token_id, end_token_id, max_length, beam_size, length_penalty:
            as `beam_search`.

    Returns:
        `(tokens, scores, num_steps)`: int32 (B, K, M) tokens of the beams
        from best to worst, 0 after each end token; their float32 (B, K)
        length-normalized scores; the int32 number of steps run.

    Example:
    >>> decode = tf.function(lambda ids: beam_loop(model, ids, start_token_id=1,
    ...     end_token_id=2, max_length=10, beam_size=4, length_penalty=0.6))
    >>> tokens, scores, num_steps = decode(tf.constant([[5, 6, 7, 0]]))
    >>> tokens.shape, scores.shape
    (TensorShape([1, 4, 10]), TensorShape([1, 4]))
    """
    batch_size = ops.shape(encoder_token_ids)[0]
    # The K beams of a row share its encoder outputs and cross-attention cache.
    encoder_outputs, encoder_padding_mask = model.encode(encoder_token_ids)  # (B, S, D), (B, S)
    cross_attention_cache = model.compute_cross_attention_cache(encoder_outputs)
    # Every row starts from one live beam; the others can never be chosen.
    first_beam = ops.where(ops.equal(ops.arange(beam_size), 0), 0.0, EXCLUDED_LOGIT)  # (K,)

    def keep_going(index, token_ids, log_probs, lengths, finished, tokens, history, cache):
        return ops.logical_and(ops.less(index, max_length), ops.logical_not(ops.all(finished)))

    def decode_one(index, token_ids, log_probs, lengths, finished, tokens, history, cache):
        logits, cache = model.decode_step(
            token_ids,
            index,
            cache,
            cross_attention_cache,
            encoder_padding_mask,
            self_attention_mask=beam_attention_mask(history, index),
        )  # (B, K, V)
        logits = ops.reshape(logits, (batch_size * beam_size, -1))  # (B * K, V)
        candidates, candidate_ids = _beam_candidates(
            log_probs, finished, logits, beam_size
        )  # (B, K, K) each
        candidate_lengths = ops.where(finished, lengths, index + 1)  # (B, K)
        scores = candidates / length_penalty_divisor(candidate_lengths, length_penalty)[..., None]
        flat_shape = (batch_size, beam_size * beam_size)
        _, best = ops.top_k(ops.reshape(scores, flat_shape), k=beam_size)  # (B, K)
        best = ops.cast(best, "int32")
        parents = ops.floor_divide(best, beam_size)  # (B, K)
        token_ids = take_per_row(ops.reshape(candidate_ids, flat_shape), best)  # (B, K)

        log_probs = take_per_row(ops.reshape(candidates, flat_shape), best)  # (B, K)
        lengths = take_per_row(candidate_lengths, parents)  # (B, K)
        finished = ops.logical_or(take_per_row(finished, parents), is_end(token_ids, end_token_id))
        tokens = write_position(take_per_row(tokens, parents), index, token_ids)  # (B, K, M)
        # A new beam's prefix is its parent's, whose step-`index` entry is in slot `parent`.
        history = write_position(take_per_row(history, parents), index, parents)  # (B, K, M)
        return index + 1, token_ids, log_probs, lengths, finished, tokens, history, cache

    num_steps, _, log_probs, lengths, _, tokens, _, _ = ops.while_loop(
        keep_going,
        decode_one,
        (
            ops.convert_to_tensor(0, "int32"),
            ops.full((batch_size, beam_size), start_token_id, dtype="int32"),
            ops.tile(first_beam[None], (batch_size, 1)),  # (B, K)
            ops.zeros((batch_size, beam_size), "int32"),
            ops.zeros((batch_size, beam_size), "bool"),
            ops.zeros((batch_size, beam_size, max_length), "int32"),  # tokens
            ops.zeros((batch_size, beam_size, max_length), "int32"),  # history
            model.init_self_attention_cache(batch_size, max_length * beam_size),
        ),
    )
    scores = log_probs / length_penalty_divisor(lengths, length_penalty)  # (B, K)
    return tokens, scores, num_steps


def beam_search(
    model: Seq2SeqTransformer,
    encoder_token_ids,
    *,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
    beam_size: int = 4,
    length_penalty: float = 0.6,
    return_all_beams: bool = False,
) -> tuple[Tensor, Tensor]:
    """Translates a batch with beam search, as in the paper (section 6.1).

    Keeps the `beam_size` best hypotheses per row. A hypothesis Y of length
    |Y| (its tokens including the end token, without the start token) is
    scored `log P(Y | X) / ((5 + |Y|) / 6) ** length_penalty`, the length
    penalty of GNMT (Wu et al., 2016) that the paper used with beam size 4
    and alpha = 0.6. A hypothesis that reaches the end token is finished: it
    keeps its score and its place among the beams while it stays in the
    top `beam_size`, and is not extended. The search stops when every beam
    of every row is finished or after `max_length` steps. `beam_size=1` is
    greedy search. The padding id 0 is never generated. Runs the encoder
    once per row and the steps in one XLA-compiled loop with key/value
    caches (compiled once per model, settings and input shape, as
    `greedy_search`; under torch the loop runs eagerly).

    Args:
        model, encoder_token_ids, start_token_id, end_token_id, max_length:
            as `greedy_search` (`max_length` per hypothesis).
        beam_size: K, hypotheses kept per row.
        length_penalty: alpha; 0 ranks by total log-probability.
        return_all_beams: return all K beams instead of the best one.

    Returns:
        `(tokens, scores)`: int32 (B, T) tokens of the best hypothesis per
        row, T <= max_length, 0 after its end token, and their float32 (B,)
        scores; with `return_all_beams=True`, (B, K, T) and (B, K), best
        first.

    Example (`model` and `source` as in `greedy_search`):
    >>> tokens, scores = beam_search(model, source, start_token_id=1, end_token_id=2,
    ...     max_length=10, beam_size=2, return_all_beams=True)
    >>> tuple(scores.shape)
    (2, 2)

    Reference:
        Vaswani et al., 2017, section 6.1; Wu et al., 2016, section 7.
    """
    model, encoder_token_ids = check_search(
        model, encoder_token_ids, start_token_id, end_token_id, max_length
    )
    check_beam_settings(beam_size, length_penalty, model.target_vocabulary_size)
    search = compiled_search(
        model,
        beam_loop,
        start_token_id=start_token_id,
        end_token_id=end_token_id,
        max_length=max_length,
        beam_size=beam_size,
        length_penalty=float(length_penalty),
    )
    tokens, scores, num_steps = search(encoder_token_ids)
    tokens = tokens[:, :, :num_steps]
    if return_all_beams:
        return tokens, scores
    return tokens[:, 0], scores[:, 0]
