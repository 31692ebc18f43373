import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_transformer.layers.masks import (
    cache_padding_mask,
    causal_mask,
    merge_masks,
    merge_padding_masks,
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
