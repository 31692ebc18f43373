"""Argument checks, the per-model compile cache and small tensor helpers
shared by the searches.

Shape letters: B batch, K beams, S source length, L max_length,
V target vocabulary.
"""

import functools
import numbers
import weakref

import keras
import tensorflow as tf

from keras_transformer.decoding.cached_decoder import CachedSeq2SeqDecoder
from keras_transformer.layers.validation import check_positive_int

# Logit of a token that must not be chosen: finite, so that a row where
# every token is excluded still gives finite softmaxes instead of NaN.
EXCLUDED_LOGIT = -1e9

# model -> (its CachedSeq2SeqDecoder, {(search, settings): compiled search}).
# The decoder and the compiled searches hold the model's layers, never the
# model itself, so an entry goes away with its model.
_CACHE = weakref.WeakKeyDictionary()


def model_decoder(model: keras.Model) -> CachedSeq2SeqDecoder:
    """The `CachedSeq2SeqDecoder` of `model`, built once per model."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Decoding compiles TensorFlow graphs with XLA and needs the "
            f"TensorFlow backend; the Keras backend is '{keras.backend.backend()}'. "
            "Set KERAS_BACKEND=tensorflow before importing Keras."
        )
    if model not in _CACHE:
        _CACHE[model] = (CachedSeq2SeqDecoder(model), {})
    return _CACHE[model][0]


def compiled_search(model: keras.Model, search, **settings):
    """`search(decoder, *tensors, **settings)` under `tf.function(jit_compile=True)`.

    One compiled function per model and settings; `tf.function` traces it
    once per input shape, so repeated calls with the same shapes reuse the
    XLA program.
    """
    decoder = model_decoder(model)
    searches = _CACHE[model][1]
    settings = {
        name: int(value) if isinstance(value, numbers.Integral) else value
        for name, value in settings.items()
    }
    key = (search, tuple(sorted(settings.items())))
    if key not in searches:
        searches[key] = tf.function(
            functools.partial(search, decoder, **settings), jit_compile=True
        )
    return searches[key]


def check_encoder_token_ids(
    encoder_token_ids, decoder: CachedSeq2SeqDecoder | None = None
) -> tf.Tensor:
    """Converts to an int32 (B, S) tensor, or raises a ValueError.

    With `decoder`, also checks the ids against the model: S >= 1, ids in
    [0, source vocabulary size) (when their values are known, outside a
    `tf.function`), and S within a learned position table. Inside the XLA
    loop an out-of-range id would read a clamped embedding row silently.
    """
    ids = tf.convert_to_tensor(encoder_token_ids)
    if ids.shape.rank != 2:
        raise ValueError(
            "`encoder_token_ids` must have shape (batch, source_length); received "
            f"shape {tuple(ids.shape)} (rank {ids.shape.rank}). Add a batch "
            "axis for a single sentence: `ids[None]`."
        )
    if not ids.dtype.is_integer:
        raise ValueError(
            f"`encoder_token_ids` must hold integer token ids; received dtype "
            f"{ids.dtype.name}. Cast them to int32 (0 = padding)."
        )
    ids = tf.cast(ids, tf.int32)
    if decoder is not None:
        _check_ids_fit_model(ids, decoder)
    return ids


def _check_ids_fit_model(ids: tf.Tensor, decoder: CachedSeq2SeqDecoder) -> None:
    source_length = ids.shape[1]
    if source_length == 0:
        raise ValueError(
            "`encoder_token_ids` must hold at least one token per row (source "
            f"tokens then the end token); received shape {tuple(ids.shape)}."
        )
    limit = decoder.max_source_length
    if limit is not None and source_length is not None and source_length > limit:
        raise ValueError(
            f"The model has learned source positions for {limit} tokens "
            f"(`max_sequence_length`), so `encoder_token_ids` can be at most {limit} "
            f"wide. Received shape {tuple(ids.shape)}."
        )
    if tf.executing_eagerly() and tf.size(ids) > 0:
        vocabulary_size = decoder.source_vocabulary_size
        lowest, highest = int(tf.reduce_min(ids)), int(tf.reduce_max(ids))
        if lowest < 0 or highest >= vocabulary_size:
            raise ValueError(
                f"`encoder_token_ids` must be source token ids in [0, {vocabulary_size}) "
                f"(the model's source vocabulary size). Received a token id "
                f"{lowest if lowest < 0 else highest}."
            )


def check_settings(
    decoder: CachedSeq2SeqDecoder,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
) -> None:
    """Checks the settings every search shares against the model."""
    vocabulary_size = decoder.vocabulary_size
    token_ids = {"start_token_id": start_token_id, "end_token_id": end_token_id}
    for name, value in token_ids.items():
        if value is None and name == "end_token_id":
            continue
        is_integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not is_integer or not 0 < value < vocabulary_size:
            raise ValueError(
                f"`{name}` must be a token id in [1, {vocabulary_size}) (0 is "
                f"padding; the target vocabulary has {vocabulary_size} ids). "
                f"Received: {name}={value!r}"
            )
    check_positive_int("max_length", max_length)
    if decoder.max_decoding_length is not None and max_length > decoder.max_decoding_length:
        raise ValueError(
            f"The model has learned target positions for {decoder.max_decoding_length} "
            f"tokens (`max_sequence_length`), so `max_length` can be at most "
            f"{decoder.max_decoding_length}. Received: max_length={max_length}"
        )


def exclude_padding(logits):
    """Logits (..., V) with the padding id 0 excluded: it is never generated."""
    is_padding = tf.range(tf.shape(logits)[-1]) == 0  # (V,)
    return tf.where(is_padding, EXCLUDED_LOGIT, logits)


def write_position(tokens, index, values):
    """`tokens[..., index] = values` as a one-hot blend, which keeps shapes
    fixed and converts to TFLite builtins.

    Args:
        tokens: int32 (..., L).
        index: int32 scalar.
        values: int32 (...).
    """
    at_index = tf.range(tf.shape(tokens)[-1]) == index  # (L,)
    return tf.where(at_index, values[..., None], tokens)


def is_end(token_ids, end_token_id):
    """Boolean `token_ids == end_token_id`; all False when it is None."""
    if end_token_id is None:
        return tf.zeros_like(token_ids, dtype=tf.bool)
    return tf.equal(token_ids, end_token_id)
