"""Argument checks shared by the layers: say what was received and expected.

The checks of plain arguments live in `keras_transformer.checks`; they are
imported here too, for the layers, decoding, models and export.
"""

import sys

import keras
import numpy as np

from keras_transformer.checks import (  # noqa: F401 (re-exported)
    check_choice,
    check_number,
    check_positive_int,
    check_rate,
)


def check_rank(layer_name, argument, shape, rank):
    """Raises ValueError if a known static rank differs from `rank`."""
    if shape is not None and len(shape) != rank:
        raise ValueError(
            f"{layer_name} expects `{argument}` of rank {rank}, received a "
            f"tensor of shape {tuple(shape)} (rank {len(shape)})."
        )


def check_last_dim(layer_name, argument, shape, dim, meaning):
    """Raises ValueError if a known static last axis of `shape` differs from `dim`."""
    if shape is not None and shape[-1] is not None and shape[-1] != dim:
        raise ValueError(
            f"{layer_name} expects `{argument}` with a last axis of size {dim} "
            f"({meaning}), received a tensor of shape {tuple(shape)}."
        )


def check_start_index(layer_name, start_index):
    """Raises ValueError for a negative Python int `start_index`."""
    if isinstance(start_index, int) and start_index < 0:
        raise ValueError(
            f"{layer_name} expects a position `start_index` >= 0. "
            f"Received: start_index={start_index}"
        )


def _static_shape(tensor):
    """The static shape of a tensor, array or nested list; None for unknown axes."""
    shape = getattr(tensor, "shape", None)
    if shape is None:
        shape = np.shape(tensor)
    return tuple(None if size is None else int(size) for size in shape)


def _axes_differ(received, expected):
    return any(a is not None and b is not None and a != b for a, b in zip(received, expected))


def check_padding_mask(layer_name, argument, mask, sequence_name, sequence_shape):
    """Raises ValueError unless a (B, S) mask fits the first two axes of a
    (B, S, D) sequence, where both are known."""
    if mask is None:
        return
    shape = _static_shape(mask)
    expected = tuple(sequence_shape[:2])
    if len(shape) != 2 or _axes_differ(shape, expected):
        raise ValueError(
            f"{layer_name} expects `{argument}` of shape (batch, length) = "
            f"{expected}, the first two axes of `{sequence_name}`; received a "
            f"mask of shape {shape}."
        )


def check_attention_mask(layer_name, mask, query_shape, key_shape):
    """Raises ValueError unless a mask can broadcast to (B, T, S), where known."""
    if mask is None:
        return
    shape = _static_shape(mask)
    expected = (query_shape[0], query_shape[1], key_shape[1])
    if not 2 <= len(shape) <= 3 or any(
        size not in (1, None) and want is not None and size != want
        for size, want in zip(reversed(shape), reversed(expected))
    ):
        raise ValueError(
            f"{layer_name} expects `attention_mask` broadcastable to (batch, "
            f"query_length, key_length) = {expected}; received a mask of shape {shape}."
        )


def check_same_batch(layer_name, first_name, first_shape, second_name, second_shape):
    """Raises ValueError if two known static batch sizes differ."""
    if _axes_differ(first_shape[:1], second_shape[:1]):
        raise ValueError(
            f"{layer_name} expects `{first_name}` and `{second_name}` with the same "
            f"batch size; received shapes {tuple(first_shape)} and {tuple(second_shape)}."
        )


def values_unknown(tensor):
    """True when `tensor` has no values yet: a KerasTensor, or a tensor inside a
    TensorFlow graph (`tf.function`, `tf.data`) or a `jax.jit` trace."""
    if keras.backend.is_keras_tensor(tensor):
        return True
    if "tensorflow" in sys.modules and not sys.modules["tensorflow"].executing_eagerly():
        return True
    if "jax" in sys.modules:
        import jax

        return isinstance(tensor, jax.core.Tracer)
    return False


def check_token_ids(layer_name, token_ids, vocabulary_size):
    """Raises ValueError for ids outside [0, vocabulary_size) when their values
    are known (eager calls). Inside a traced function (`model.fit`,
    `tf.function`, `jax.jit`) the values are unknown and nothing is checked."""
    if values_unknown(token_ids):
        return
    ids = keras.ops.convert_to_numpy(token_ids)
    if ids.size == 0:
        return
    lowest, highest = int(ids.min()), int(ids.max())
    if lowest < 0 or highest >= vocabulary_size:
        received = lowest if lowest < 0 else highest
        raise ValueError(
            f"{layer_name} embeds {vocabulary_size} token ids (`vocabulary_size`), so "
            f"ids must be in [0, {vocabulary_size}). Received a token id {received}. "
            "Check that the tokenizer's vocabulary matches the model."
        )
