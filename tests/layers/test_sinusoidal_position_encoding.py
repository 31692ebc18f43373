import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.layers import SinusoidalPositionEncoding


def reference_encoding(length, dim, start_index=0, max_wavelength=10000):
    """PE(pos, 2i) = sin(pos / w^(2i/d)), PE(pos, 2i+1) = cos(same), in float64."""
    positions = np.arange(start_index, start_index + length, dtype="float64")[:, None]
    features = np.arange(dim)[None, :]
    angles = positions / max_wavelength ** (2 * (features // 2) / dim)  # (T, D)
    return np.where(features % 2 == 0, np.sin(angles), np.cos(angles))


@pytest.mark.parametrize("dim", [8, 7, 1, 64])
@pytest.mark.parametrize("start_index", [0, 5, 200])
def test_matches_the_formula(dim, start_index):
    inputs = np.zeros((3, 11, dim), "float32")
    outputs = keras.ops.convert_to_numpy(
        SinusoidalPositionEncoding()(inputs, start_index=start_index)
    )
    assert outputs.shape == (3, 11, dim)
    expected = reference_encoding(11, dim, start_index)
    for row in outputs:
        np.testing.assert_allclose(row, expected, atol=2e-5)


def test_first_position_is_sin_zero_cos_zero():
    outputs = keras.ops.convert_to_numpy(SinusoidalPositionEncoding()(np.zeros((1, 1, 6))))
    np.testing.assert_allclose(outputs[0, 0], [0, 1, 0, 1, 0, 1], atol=1e-7)


def test_max_wavelength_changes_the_frequencies():
    inputs = np.zeros((1, 9, 6), "float32")
    outputs = keras.ops.convert_to_numpy(SinusoidalPositionEncoding(max_wavelength=100)(inputs))
    np.testing.assert_allclose(outputs[0], reference_encoding(9, 6, max_wavelength=100), atol=1e-5)
    assert not np.allclose(outputs[0], reference_encoding(9, 6))


@pytest.mark.tensorflow_only
def test_start_index_offsets_positions_and_may_be_a_tensor():
    layer = SinusoidalPositionEncoding()
    full = keras.ops.convert_to_numpy(layer(np.zeros((2, 10, 8), "float32")))
    step = tf.function(lambda x, index: layer(x, start_index=index))
    for index in range(10):
        one = step(tf.zeros((2, 1, 8)), tf.constant(index))
        one = keras.ops.convert_to_numpy(one)
        np.testing.assert_allclose(one[:, 0], full[:, index], atol=1e-6)


def test_has_no_weights_and_ignores_input_values():
    layer = SinusoidalPositionEncoding()
    a = layer(np.zeros((2, 4, 8), "float32"))
    b = layer(np.random.default_rng(0).normal(size=(2, 4, 8)).astype("float32"))
    assert layer.weights == []
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "mixed_float16", "mixed_bfloat16"])
def test_returns_the_compute_dtype(dtype):
    layer = SinusoidalPositionEncoding(dtype=dtype)
    outputs = layer(np.zeros((2, 50, 16), "float32"))
    assert keras.backend.standardize_dtype(outputs.dtype) == layer.compute_dtype
    values = keras.ops.convert_to_numpy(keras.ops.cast(outputs, "float32"))
    np.testing.assert_allclose(values[0], reference_encoding(50, 16), atol=1e-2)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_wavelength=0"):
        SinusoidalPositionEncoding(max_wavelength=0)
    with pytest.raises(ValueError, match=r"rank 3.*\(2, 8\)"):
        SinusoidalPositionEncoding()(np.zeros((2, 8), "float32"))


def test_config_round_trip():
    layer = SinusoidalPositionEncoding(max_wavelength=500, name="positions")
    restored = SinusoidalPositionEncoding.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert restored.max_wavelength == 500


def test_keras_file_round_trip(save_and_load):
    inputs = keras.Input((None, 6))
    outputs = inputs + SinusoidalPositionEncoding(max_wavelength=1000)(inputs)
    model = keras.Model(inputs, outputs, name="sinusoidal")
    x = np.random.default_rng(0).normal(size=(2, 5, 6)).astype("float32")
    restored = save_and_load(model)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(x)), keras.ops.convert_to_numpy(model(x))
    )
    assert restored.layers[-1].max_wavelength == 1000


def concatenated_reference(length, dim, start_index=0):
    """Sines of the ceil(D / 2) frequencies, then their cosines (Marian's
    `MarianSinusoidalPositionalEmbedding`), in float64."""
    positions = np.arange(start_index, start_index + length, dtype="float64")[:, None]
    angles = positions / 10000 ** (2 * (np.arange(dim)[None, :] // 2) / dim)  # (T, D)
    return np.concatenate([np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])], axis=1)[:, :dim]


@pytest.mark.parametrize("dim", [8, 7, 16])
@pytest.mark.parametrize("start_index", [0, 9])
def test_concatenated_layout_is_sines_then_cosines(dim, start_index):
    layer = SinusoidalPositionEncoding(layout="concatenated")
    outputs = keras.ops.convert_to_numpy(layer(np.zeros((2, 6, dim)), start_index=start_index))
    expected = concatenated_reference(6, dim, start_index)
    np.testing.assert_allclose(outputs[1], expected, atol=2e-5)
    interleaved = reference_encoding(6, dim, start_index)
    assert np.allclose(np.sort(outputs[1], axis=1), np.sort(interleaved, axis=1), atol=2e-5)


def test_layout_round_trips_and_is_checked():
    layer = SinusoidalPositionEncoding(layout="concatenated")
    assert SinusoidalPositionEncoding.from_config(layer.get_config()).layout == "concatenated"
    assert SinusoidalPositionEncoding.from_config({"max_wavelength": 10}).layout == "interleaved"
    with pytest.raises(ValueError, match="`layout` must be one of .*Received: layout='split'"):
        SinusoidalPositionEncoding(layout="split")
