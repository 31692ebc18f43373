import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.layers import PositionEmbedding


def built_layer(sequence_length=10, dim=4, **kwargs):
    layer = PositionEmbedding(sequence_length, **kwargs)
    layer.build((None, None, dim))
    return layer


def test_returns_the_table_rows_for_every_batch_element():
    layer = built_layer()
    table = keras.ops.convert_to_numpy(layer.position_embeddings)
    outputs = keras.ops.convert_to_numpy(layer(np.zeros((3, 6, 4), "float32")))
    assert outputs.shape == (3, 6, 4)
    for row in outputs:
        np.testing.assert_array_equal(row, table[:6])


@pytest.mark.tensorflow_only
def test_start_index_offsets_positions_and_may_be_a_tensor():
    layer = built_layer()
    table = keras.ops.convert_to_numpy(layer.position_embeddings)
    outputs = layer(np.zeros((2, 3, 4), "float32"), start_index=7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(outputs)[1], table[7:10])
    step = tf.function(lambda x, index: layer(x, start_index=index))
    one = step(tf.zeros((2, 1, 4)), tf.constant(4))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(one)[0, 0], table[4])


def test_table_has_one_trainable_vector_per_position():
    layer = built_layer(sequence_length=12, dim=5)
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(12, 5)]


@pytest.mark.tensorflow_only
def test_gradient_reaches_only_the_used_positions():
    layer = built_layer()
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(layer(np.zeros((2, 3, 4), "float32"), start_index=2))
    gradient = keras.ops.convert_to_numpy(tape.gradient(loss, layer.position_embeddings.value))
    np.testing.assert_array_equal(gradient[2:5], np.full((3, 4), 2.0))
    assert not gradient[:2].any() and not gradient[5:].any()


@pytest.mark.parametrize("length, start_index", [(11, 0), (4, 7), (1, 10)])
def test_positions_beyond_sequence_length_raise(length, start_index):
    layer = built_layer(sequence_length=10)
    with pytest.raises(ValueError, match=f"length {length} starting at position {start_index}"):
        layer(np.zeros((1, length, 4), "float32"), start_index=start_index)


def test_the_last_position_is_usable():
    layer = built_layer(sequence_length=10)
    assert layer(np.zeros((1, 10, 4), "float32")).shape == (1, 10, 4)
    assert layer(np.zeros((1, 1, 4), "float32"), start_index=9).shape == (1, 1, 4)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sequence_length=0"):
        PositionEmbedding(0)
    with pytest.raises(ValueError, match="sequence_length=2.5"):
        PositionEmbedding(2.5)
    with pytest.raises(ValueError, match=r"rank 3.*\(2, 8\)"):
        PositionEmbedding(10)(np.zeros((2, 8), "float32"))


@pytest.mark.parametrize("dtype", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_weights(dtype):
    layer = built_layer(dtype=dtype)
    outputs = layer(np.zeros((2, 5, 4), "float32"))
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype.removeprefix("mixed_")
    assert keras.backend.standardize_dtype(layer.position_embeddings.dtype) == "float32"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(outputs, "float32"))[0],
        keras.ops.convert_to_numpy(layer.position_embeddings)[:5],
        atol=1e-2,
    )


def test_config_round_trip():
    layer = PositionEmbedding(17, initializer="zeros", name="positions")
    restored = PositionEmbedding.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert restored.sequence_length == 17


def test_trains_and_keras_file_round_trip(save_and_load):
    inputs = keras.Input((6, 4))
    outputs = inputs + PositionEmbedding(8)(inputs)
    model = keras.Model(inputs, outputs, name="learned_positions")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
    before = keras.ops.convert_to_numpy(model.layers[-1].position_embeddings).copy()
    x = np.random.default_rng(0).normal(size=(4, 6, 4)).astype("float32")
    model.fit(x, np.zeros_like(x), epochs=1, verbose=0)
    after = keras.ops.convert_to_numpy(model.layers[-1].position_embeddings)
    assert not np.allclose(before[:6], after[:6])
    np.testing.assert_array_equal(before[6:], after[6:])

    restored = save_and_load(model)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(x)), keras.ops.convert_to_numpy(model(x))
    )
