"""Pure helpers that build boolean attention masks (True = may attend).

Shape letters: see `keras_transformer`; here T is the query length and S the key length.
"""

import functools

import keras
from keras import ops


# Keras stores a tensor's mask per backend (an attribute, or a table keyed by
# the tensor for JAX tracers) and exports no accessor for it. Its public
# protocol is the one of `Layer.__call__`: a layer whose `call()` takes `mask`
# receives the mask of its input, and a layer that supports masking attaches
# `compute_mask(...)` to its output. These two weightless layers use it.
class _ReadKerasMask(keras.layers.Layer):
    def call(self, inputs, mask=None):
        return mask

    def compute_mask(self, inputs, mask=None):
        return None


class _AttachKerasMask(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)  # keeps the input tensor itself
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return inputs


_read_keras_mask = _ReadKerasMask(name="read_keras_mask")
_attach_keras_mask = _AttachKerasMask(name="attach_keras_mask")


def get_keras_mask(x):
    """The Keras mask attached to tensor `x` (e.g. by `mask_zero=True`), or None."""
    return _read_keras_mask(x)


def set_keras_mask(x, mask):
    """Attaches `mask` to tensor `x` in place, as a masking Keras layer does;
    `x` must not carry a mask yet (a mask already attached is kept)."""
    _attach_keras_mask(x, mask=mask)


def causal_mask(query_length, key_length, start_index=0):
    """Lower-triangular mask, shifted by `start_index` for cached decoding.

    Query `t` sits at absolute position `start_index + t` and may attend to
    key positions `s <= start_index + t`.

    Returns:
        Boolean tensor of shape (T, S).
    """
    query_positions = ops.arange(query_length)[:, None] + start_index  # (T, 1)
    key_positions = ops.arange(key_length)[None, :]  # (1, S)
    return ops.greater_equal(query_positions, key_positions)  # (T, S)


def merge_padding_masks(*padding_masks):
    """ANDs (B, S) key padding masks, skipping None; None when all are None."""
    masks = [ops.cast(mask, "bool") for mask in padding_masks if mask is not None]
    return functools.reduce(ops.logical_and, masks) if masks else None


def cache_padding_mask(padding_mask, cache_length, cache_update_index):
    """Widens the padding mask of new self-attention cache entries to the cache.

    `padding_mask` (B, T) covers the T entries written at `cache_update_index`;
    the other entries count as real. The cache keeps no padding of earlier
    steps, so cached decoding supports right padding (no real token after a
    padded one); entries after the update are hidden by the causal mask.

    Returns:
        Boolean tensor of shape (B, M).
    """
    padding_mask = ops.cast(padding_mask, "bool")
    all_real = ops.ones((ops.shape(padding_mask)[0], cache_length), "bool")  # (B, M)
    return ops.slice_update(all_real, (0, cache_update_index), padding_mask)


def merge_masks(padding_mask=None, attention_mask=None, causal=None):
    """ANDs a key padding mask, an explicit mask and a causal mask.

    Args:
        padding_mask: None or (B, S); False marks padded keys.
        attention_mask: None or a mask broadcastable to (B, T, S).
        causal: None or a (T, S) mask from `causal_mask`.

    Returns:
        None when all are None, else a boolean mask broadcastable to
        (B, T, S).
    """
    masks = []
    if padding_mask is not None:
        masks.append(ops.cast(padding_mask, "bool")[:, None, :])  # (B, 1, S)
    if attention_mask is not None:
        masks.append(ops.cast(attention_mask, "bool"))
    if causal is not None:
        masks.append(causal)
    if not masks:
        return None
    mask = masks[0]
    for other in masks[1:]:
        mask = ops.logical_and(mask, other)
    return mask
