"""Sampling with temperature, top-k and top-p, key/value caches and XLA.

Shape letters: see `keras_transformer` (B, S, M, V).
"""

import random

import keras
from keras import ops

from keras_transformer.decoding.greedy import greedy_loop
from keras_transformer.decoding import search_utils
from keras_transformer.decoding.search_utils import EXCLUDED_LOGIT, Tensor
from keras_transformer.layers.validation import check_number, check_positive_int
from keras_transformer.models import Seq2SeqTransformer


def filter_logits(logits, temperature, top_k, top_p):
    """Logits (B, V) divided by `temperature`, with the tokens outside the
    `top_k` most likely, or outside the smallest set of most likely tokens
    whose probability reaches `top_p`, set to EXCLUDED_LOGIT. The most
    likely token is always kept; `top_k` and `top_p` may be None."""
    logits = logits / temperature
    if top_k is not None:
        kth_largest = ops.top_k(logits, k=top_k)[0][:, -1:]  # (B, 1)
        logits = ops.where(ops.less(logits, kth_largest), EXCLUDED_LOGIT, logits)
    if top_p is not None:
        sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)  # (B, V), descending
        mass = ops.cumsum(ops.softmax(sorted_logits, axis=-1), axis=-1)  # (B, V)
        mass_before = ops.pad(mass[:, :-1], ((0, 0), (1, 0)))  # (B, V), exclusive
        smallest_kept = ops.min(
            ops.where(ops.less(mass_before, top_p), sorted_logits, -EXCLUDED_LOGIT),
            axis=-1,
            keepdims=True,
        )  # (B, 1)
        logits = ops.where(ops.less(logits, smallest_kept), EXCLUDED_LOGIT, logits)
    return logits


def _categorical(logits: Tensor, seed: Tensor, index: Tensor) -> Tensor:
    """int32 (B,) token ids drawn from softmax(logits (B, V)) with the
    stateless seed `(seed, index)`: the same seed and step give the same
    draw.

    `keras.random` takes a traced seed only under JAX (as a raw key), so
    TensorFlow calls `tf.random.stateless_categorical`, and torch, which
    runs eagerly, takes one int seed made of the two numbers.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        token_ids = tf.random.stateless_categorical(logits, 1, seed=tf.stack([seed, index]))
    elif backend == "jax":
        step_seed = ops.cast(ops.stack([seed, index]), "uint32")  # (2,), a raw JAX key
        token_ids = keras.random.categorical(logits, 1, seed=step_seed)
    else:
        token_ids = keras.random.categorical(logits, 1, seed=int(seed) * 2**20 + int(index))
    return ops.cast(token_ids[:, 0], "int32")  # (B,)


def sample_loop(
    model: Seq2SeqTransformer,
    encoder_token_ids: Tensor,
    seed: Tensor,
    *,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> tuple[Tensor, Tensor]:
    """The sampling loop as graph code, like `greedy_loop` but drawing each
    token from the filtered distribution with the stateless seed
    `(seed, step)`.

    Args:
        model: a `Seq2SeqTransformer`.
        encoder_token_ids: int32 (B, S).
        seed: int32 scalar.
        start_token_id, end_token_id, max_length, temperature, top_k, top_p:
            as `sample`.

    Returns:
        `(tokens, scores, num_steps)` as `greedy_loop`.

    Example:
    >>> decode = tf.function(lambda ids, seed: sample_loop(model, ids, seed,
    ...     start_token_id=1, end_token_id=2, max_length=10, temperature=1.0,
    ...     top_k=5, top_p=None))
    >>> tokens, scores, num_steps = decode(tf.constant([[5, 6, 7, 0]]), tf.constant(0))
    >>> tokens.shape
    TensorShape([1, 10])
    """

    def choose_tokens(logits, index):
        logits = filter_logits(logits, temperature, top_k, top_p)
        return _categorical(logits, seed, index)  # (B,)

    return greedy_loop(
        model,
        encoder_token_ids,
        start_token_id=start_token_id,
        end_token_id=end_token_id,
        max_length=max_length,
        choose_tokens=choose_tokens,
    )


def sample(
    model: Seq2SeqTransformer,
    encoder_token_ids,
    *,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Translates a batch by sampling each token from the model.

    The next-token distribution is the softmax of the logits divided by
    `temperature`, restricted to the `top_k` most likely tokens and/or to
    the smallest set of most likely tokens whose probability reaches `top_p`
    (nucleus sampling), then renormalized. The padding id 0 is never
    generated. Same model, inputs, settings and `seed` give the same tokens;
    `top_k=1` is greedy search. Runs in one XLA-compiled loop with key/value
    caches like `greedy_search`. The draws depend on the backend: the same
    seed gives different tokens under TensorFlow, JAX and torch.

    Args:
        model, encoder_token_ids, start_token_id, end_token_id, max_length:
            as `greedy_search`.
        temperature: > 0; below 1 sharpens, above 1 flattens.
        top_k: None, or keep only the k most likely tokens.
        top_p: None, or a probability in (0, 1].
        seed: an int for reproducible samples; None draws one from Python's
            `random` (seeded by `keras.utils.set_random_seed`).

    Returns:
        `(tokens, scores)` as `greedy_search`: int32 (B, T) token ids,
        T <= max_length, the end token included, 0 after it; float32 (B,)
        their total log-probability under the model (before temperature
        and filtering).

    Example:
    >>> model = build_seq2seq_transformer(30, 30, num_layers=1, hidden_dim=16,
    ...     num_heads=2, intermediate_dim=32)
    >>> source = np.array([[5, 6, 7, 0]], "int32")
    >>> tokens, scores = sample(model, source, start_token_id=1, end_token_id=2,
    ...     max_length=10, top_k=5, seed=0)
    >>> tokens.shape[1] <= 10
    True
    """
    model, encoder_token_ids = search_utils.check_search(
        model, encoder_token_ids, start_token_id, end_token_id, max_length
    )
    check_number("temperature", temperature, positive=True)
    if top_k is not None:
        check_positive_int("top_k", top_k)
        top_k = min(top_k, model.target_vocabulary_size)
    is_number = isinstance(top_p, (int, float)) and not isinstance(top_p, bool)
    if top_p is not None and (not is_number or not 0 < top_p <= 1):
        raise ValueError(f"`top_p` must be a probability in (0, 1]. Received: top_p={top_p!r}")
    if seed is None:
        seed = random.randrange(2**31)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
    search = search_utils.compiled_search(
        model,
        sample_loop,
        start_token_id=start_token_id,
        end_token_id=end_token_id,
        max_length=max_length,
        temperature=float(temperature),
        top_k=top_k,
        top_p=None if top_p is None else float(top_p),
    )
    seed = ops.convert_to_tensor(seed % 2**31, "int32")
    tokens, scores, num_steps = search(encoder_token_ids, seed)
    return tokens[:, :num_steps], scores
