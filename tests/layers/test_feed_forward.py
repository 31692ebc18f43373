import keras
import numpy as np
import pytest

from keras_transformer.layers import FeedForward
from keras_transformer.layers.masks import get_keras_mask, set_keras_mask


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")).astype("float64")


def reference_feed_forward(layer, x):
    """max(0, x W1 + b1) W2 + b2 with the layer's weights, in float64."""
    inner = np.maximum(0.0, to_numpy(x) @ to_numpy(layer.intermediate_dense.kernel)
                       + to_numpy(layer.intermediate_dense.bias))
    return inner @ to_numpy(layer.output_dense.kernel) + to_numpy(layer.output_dense.bias)


@pytest.fixture
def x(rng):
    return rng.normal(size=(2, 5, 6)).astype("float32")


def test_matches_reference(x):
    layer = FeedForward(16, bias_initializer="random_normal")
    outputs = layer(x)
    assert outputs.shape == (2, 5, 6)
    assert layer.intermediate_dense.kernel.shape == (6, 16)
    assert layer.output_dense.kernel.shape == (16, 6)
    np.testing.assert_allclose(to_numpy(outputs), reference_feed_forward(layer, x), atol=1e-5)


def test_acts_on_each_position_separately(x):
    layer = FeedForward(16)
    changed = x.copy()
    changed[:, 2] += 1.0
    before, after = to_numpy(layer(x)), to_numpy(layer(changed))
    np.testing.assert_array_equal(np.delete(before, 2, axis=1), np.delete(after, 2, axis=1))
    assert not np.allclose(before[:, 2], after[:, 2])


def test_activation_is_configurable(x):
    relu, gelu = FeedForward(16), FeedForward(16, activation="gelu")
    relu.build(x.shape)
    gelu.build(x.shape)
    gelu.set_weights(relu.get_weights())
    assert not np.allclose(to_numpy(relu(x)), to_numpy(gelu(x)))


def test_keras_mask_passes_through(x):
    mask = np.array([[True, True, False, False, False], [True] * 5])
    inputs = keras.ops.convert_to_tensor(x)
    set_keras_mask(inputs, keras.ops.convert_to_tensor(mask))
    outputs = FeedForward(16)(inputs)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(get_keras_mask(outputs)), mask)


def test_dropout_only_in_training(x):
    layer = FeedForward(64, dropout=0.5)
    inference = to_numpy(layer(x, training=False))
    np.testing.assert_allclose(inference, reference_feed_forward(layer, x), atol=1e-5)
    assert not np.allclose(to_numpy(layer(x, training=True)), inference, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"intermediate_dim": 0}, "intermediate_dim=0"),
     ({"intermediate_dim": "32"}, "intermediate_dim='32'"),
     ({"dropout": 1.5}, "dropout=1.5")],
)
def test_rejects_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeedForward(**{"intermediate_dim": 16, **kwargs})


@pytest.mark.parametrize("dtype", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(x, dtype):
    layer = FeedForward(16, dtype=dtype)
    outputs = layer(x)
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype.removeprefix("mixed_")
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)
    np.testing.assert_allclose(to_numpy(outputs), reference_feed_forward(layer, x), atol=0.1)


def test_config_round_trip():
    layer = FeedForward(32, activation="gelu", dropout=0.1, kernel_initializer="he_uniform")
    restored = FeedForward.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()


def test_trains_and_keras_file_round_trip(x, save_and_load):
    inputs = keras.Input((None, 6))
    model = keras.Model(inputs, FeedForward(16, activation="gelu")(inputs), name="feed_forward")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", run_eagerly=True)
    history = model.fit(x, np.zeros_like(x), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    restored = save_and_load(model)
    np.testing.assert_array_equal(to_numpy(restored(x)), to_numpy(model(x)))
