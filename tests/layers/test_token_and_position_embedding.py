import math

import keras
import numpy as np
import pytest

from keras_transformer.layers import TokenAndPositionEmbedding
from keras_transformer.layers.masks import get_keras_mask, set_keras_mask

IDS = np.array([[5, 7, 9, 2, 0, 0], [3, 0, 0, 0, 0, 0]], "int32")


def reference_encoding(length, dim):
    """The sinusoidal encoding of positions 0 ... length-1, in float64."""
    positions = np.arange(length, dtype="float64")[:, None]
    features = np.arange(dim)[None, :]
    angles = positions / 10000 ** (2 * (features // 2) / dim)  # (T, D)
    return np.where(features % 2 == 0, np.sin(angles), np.cos(angles))


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


def test_sinusoidal_output_is_scaled_tokens_plus_encoding():
    layer = TokenAndPositionEmbedding(12, 16, 8)
    outputs = to_numpy(layer(IDS))
    table = to_numpy(layer.embeddings)
    expected = table[IDS] * math.sqrt(8) + reference_encoding(6, 8)[None]
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_learned_output_is_scaled_tokens_plus_position_table():
    layer = TokenAndPositionEmbedding(12, 16, 8, position_encoding="learned")
    outputs = to_numpy(layer(IDS, start_index=3))
    table = to_numpy(layer.embeddings)
    positions = to_numpy(layer.position_layer.position_embeddings)
    expected = table[IDS] * math.sqrt(8) + positions[None, 3:9]
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    assert len(layer.trainable_weights) == 2


def test_scale_embeddings_false_adds_raw_tokens():
    layer = TokenAndPositionEmbedding(12, 16, 8, scale_embeddings=False)
    outputs = to_numpy(layer(IDS))
    expected = to_numpy(layer.embeddings)[IDS] + reference_encoding(6, 8)[None]
    np.testing.assert_allclose(outputs, expected, atol=1e-6)


def test_start_index_matches_the_full_sequence():
    layer = TokenAndPositionEmbedding(12, 16, 8)
    full = to_numpy(layer(IDS))
    for index in range(IDS.shape[1]):
        step = to_numpy(layer(IDS[:, index : index + 1], start_index=index))
        np.testing.assert_allclose(step[:, 0], full[:, index], atol=1e-6)


def test_default_initializer_gives_unit_variance_scaled_embeddings():
    layer = TokenAndPositionEmbedding(2000, 4, 64, position_encoding="learned")
    layer.build((None, None))
    scaled = to_numpy(layer.embeddings) * math.sqrt(64)
    assert 0.95 < scaled.std() < 1.05


def test_mask_is_token_ids_not_zero():
    layer = TokenAndPositionEmbedding(12, 16, 8)
    outputs = layer(IDS)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(get_keras_mask(outputs)), IDS != 0)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer.compute_mask(IDS)), IDS != 0
    )


def test_reverse_projects_onto_the_token_table_in_float32():
    layer = TokenAndPositionEmbedding(12, 16, 8)
    hidden = layer(IDS)
    logits = layer(hidden, reverse=True)
    assert logits.shape == (2, 6, 12)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    expected = to_numpy(hidden) @ to_numpy(layer.embeddings).T
    np.testing.assert_allclose(to_numpy(logits), expected, rtol=1e-5, atol=1e-5)


def test_reverse_keeps_the_incoming_mask():
    layer = TokenAndPositionEmbedding(12, 16, 8)
    hidden = keras.ops.ones((2, 6, 8))
    set_keras_mask(hidden, keras.ops.convert_to_tensor(IDS != 0))
    logits = layer(hidden, reverse=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(get_keras_mask(logits)), IDS != 0)


def test_mask_flows_through_a_functional_model():
    ids = keras.Input((None,), dtype="int32")
    embedding = TokenAndPositionEmbedding(12, 16, 8)
    logits = embedding(keras.layers.Dense(8)(embedding(ids)), reverse=True)
    model = keras.Model(ids, logits)
    outputs = model(IDS)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(get_keras_mask(outputs)), IDS != 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary_size": 0}, "vocabulary_size=0"),
        ({"sequence_length": -1}, "sequence_length=-1"),
        ({"embedding_dim": 0}, "embedding_dim=0"),
        ({"position_encoding": "rotary"}, "position_encoding='rotary'"),
    ],
)
def test_rejects_bad_configuration(kwargs, message):
    arguments = {"vocabulary_size": 12, "sequence_length": 16, "embedding_dim": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        TokenAndPositionEmbedding(**arguments)


def test_rejects_float_ids():
    with pytest.raises(ValueError, match="integer token ids.*float32"):
        TokenAndPositionEmbedding(12, 16, 8)(IDS.astype("float32"))


def test_rejects_rank_3_ids():
    with pytest.raises(ValueError, match=r"rank 2.*\(2, 6, 1\)"):
        TokenAndPositionEmbedding(12, 16, 8)(IDS[..., None])


def test_rejects_learned_positions_beyond_sequence_length():
    layer = TokenAndPositionEmbedding(12, 4, 8, position_encoding="learned")
    with pytest.raises(ValueError, match="length 6 starting at position 0"):
        layer(IDS)
    with pytest.raises(ValueError, match="length 1 starting at position 4"):
        layer(IDS[:, :1], start_index=4)


@pytest.mark.parametrize("dtype", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("position_encoding", ["sinusoidal", "learned"])
def test_mixed_precision(dtype, position_encoding):
    layer = TokenAndPositionEmbedding(12, 16, 8, position_encoding=position_encoding, dtype=dtype)
    outputs = layer(IDS)
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype.removeprefix("mixed_")
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)
    logits = layer(outputs, reverse=True)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.isfinite(to_numpy(logits)).all()
    reference = TokenAndPositionEmbedding(12, 16, 8, position_encoding=position_encoding)
    reference.build((None, None))
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(reference(IDS)), atol=0.05)


@pytest.mark.parametrize("position_encoding", ["sinusoidal", "learned"])
def test_config_round_trip(position_encoding):
    layer = TokenAndPositionEmbedding(
        12, 16, 8, position_encoding=position_encoding, scale_embeddings=False, max_wavelength=99
    )
    restored = TokenAndPositionEmbedding.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert type(restored.position_layer) is type(layer.position_layer)


@pytest.mark.parametrize("position_encoding", ["sinusoidal", "learned"])
def test_trains_and_keras_file_round_trip(position_encoding, save_and_load):
    ids = keras.Input((None,), dtype="int32")
    embedding = TokenAndPositionEmbedding(12, 16, 8, position_encoding=position_encoding)
    model = keras.Model(ids, embedding(embedding(ids), reverse=True), name="tied")
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    history = model.fit(IDS, IDS, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    restored = save_and_load(model)
    np.testing.assert_array_equal(to_numpy(restored(IDS)), to_numpy(model(IDS)))
    assert restored.layers[1].position_encoding == position_encoding


def test_output_bias_is_added_to_the_reverse_projection_only():
    layer = TokenAndPositionEmbedding(12, 16, 8, use_output_bias=True)
    layer.build((None, None))
    bias = np.linspace(-1.0, 1.0, 12).astype("float32")
    layer.output_bias.assign(bias)
    plain = TokenAndPositionEmbedding(12, 16, 8)
    plain.build((None, None))
    plain.embeddings.assign(layer.embeddings)
    np.testing.assert_array_equal(to_numpy(layer(IDS)), to_numpy(plain(IDS)))
    hidden = np.random.default_rng(0).normal(size=(2, 3, 8)).astype("float32")
    for positions in (hidden, hidden[:, :1]):  # the one-position path of decoding too
        np.testing.assert_allclose(
            to_numpy(layer(positions, reverse=True)),
            to_numpy(plain(positions, reverse=True)) + bias,
            atol=1e-5,
        )


@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
def test_output_bias_and_layout_survive_a_keras_file(dtype, save_and_load):
    ids = keras.Input((None,), dtype="int32")
    embedding = TokenAndPositionEmbedding(
        12, 16, 8, use_output_bias=True, sinusoidal_layout="concatenated", dtype=dtype
    )
    model = keras.Model(ids, embedding(embedding(ids), reverse=True), name="biased")
    embedding.output_bias.assign(np.arange(12, dtype="float32"))
    assert keras.backend.standardize_dtype(embedding.output_bias.dtype) == "float32"
    restored = save_and_load(model)
    np.testing.assert_array_equal(to_numpy(restored(IDS)), to_numpy(model(IDS)))
    config = restored.layers[1].get_config()
    assert config["use_output_bias"] and config["sinusoidal_layout"] == "concatenated"


def test_old_configs_load_without_the_new_options():
    config = TokenAndPositionEmbedding(12, 16, 8).get_config()
    for key in ("use_output_bias", "sinusoidal_layout"):
        config.pop(key)
    layer = TokenAndPositionEmbedding.from_config(config)
    assert not layer.use_output_bias and layer.position_layer.layout == "interleaved"
    layer.build((None, None))
    assert [weight.path.split("/")[-1] for weight in layer.weights] == ["embeddings"]
