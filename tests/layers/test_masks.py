import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_transformer.layers.masks import (
    cache_padding_mask,
    causal_mask,
    get_keras_mask,
    merge_masks,
    merge_padding_masks,
    set_keras_mask,
)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 5))
def test_causal_mask_lets_query_t_see_keys_up_to_start_plus_t(query_length, key_length, start):
    mask = to_numpy(causal_mask(query_length, key_length, start))
    expected = np.arange(key_length)[None, :] <= np.arange(query_length)[:, None] + start
    np.testing.assert_array_equal(mask, expected)


def test_merge_masks_ands_all_given_masks():
    padding = np.array([[True, True, False], [True, False, False]])  # (B, S)
    explicit = np.array([[[True, False, True]] * 3, [[True, True, True]] * 3])  # (B, T, S)
    causal = np.tril(np.ones((3, 3), bool))
    merged = to_numpy(merge_masks(padding, explicit, causal))
    np.testing.assert_array_equal(merged, padding[:, None] & explicit & causal)
    np.testing.assert_array_equal(to_numpy(merge_masks(padding_mask=padding)), padding[:, None])
    assert merge_masks() is None


def test_merge_padding_masks_ands_and_skips_none():
    a = np.array([[True, True, False]])
    b = np.array([[False, True, True]])
    np.testing.assert_array_equal(to_numpy(merge_padding_masks(a, None, b)), a & b)
    np.testing.assert_array_equal(to_numpy(merge_padding_masks(None, np.array([[1, 0, 1]]))),
                                  [[True, False, True]])
    assert merge_padding_masks(None, None) is None


@pytest.mark.parametrize("index", [0, 2, 5])
def test_cache_padding_mask_places_new_entries_at_the_update_index(index):
    new = np.array([[True, False], [False, False]])  # (B, T)
    mask = to_numpy(cache_padding_mask(new, 7, index))
    expected = np.ones((2, 7), bool)
    expected[:, index : index + 2] = new
    np.testing.assert_array_equal(mask, expected)


IDS = np.array([[3, 4, 0, 0], [5, 6, 7, 0]], "int32")


class ZeroPadding(keras.layers.Layer):
    """Zeroes the positions that the input's Keras mask marks as padding."""

    def call(self, inputs):
        mask = get_keras_mask(inputs)  # (B, T) or None
        if mask is None:
            return inputs
        return inputs * keras.ops.cast(mask, inputs.dtype)[..., None]  # (B, T, D)

    def compute_mask(self, inputs, mask=None):
        return None


def test_get_keras_mask_reads_the_mask_keras_attached():
    hidden = keras.layers.Embedding(9, 4, mask_zero=True)(IDS)  # (B, T, D)
    np.testing.assert_array_equal(to_numpy(get_keras_mask(hidden)), IDS != 0)
    assert get_keras_mask(keras.ops.ones((2, 4, 4))) is None


@pytest.mark.parametrize("jit_compile", [False, True])
def test_get_keras_mask_inside_a_compiled_model(jit_compile):
    """Inside `model.predict` the tensors are traced (TensorFlow graph, `jax.jit`),
    where Keras may keep the mask outside the tensor."""
    ids = keras.Input((4,), dtype="int32")
    hidden = keras.layers.Embedding(9, 4, mask_zero=True, embeddings_initializer="ones")(ids)
    model = keras.Model(ids, ZeroPadding()(hidden))
    model.compile(jit_compile=jit_compile and keras.backend.backend() != "torch")
    outputs = model.predict(IDS, verbose=0)  # (B, T, D)
    np.testing.assert_array_equal(outputs[..., 0], (IDS != 0).astype("float32"))


def test_set_keras_mask_is_seen_by_keras_layers():
    hidden = keras.ops.convert_to_tensor(np.arange(8, dtype="float32").reshape(2, 4, 1))
    set_keras_mask(hidden, keras.ops.convert_to_tensor(IDS != 0))
    np.testing.assert_array_equal(to_numpy(get_keras_mask(hidden)), IDS != 0)
    pooled = keras.layers.GlobalAveragePooling1D()(hidden)  # (B, 1): mean of real steps
    np.testing.assert_allclose(to_numpy(pooled)[:, 0], [0.5, 5.0])
