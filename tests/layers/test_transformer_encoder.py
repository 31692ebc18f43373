import keras
import numpy as np
import pytest

from keras_transformer.layers import (
    TokenAndPositionEmbedding,
    TransformerEncoder,
    TransformerEncoderBlock,
)
from keras_transformer.layers.masks import get_keras_mask, set_keras_mask

B, S, D = 2, 6, 8
LENGTHS = [6, 2]


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


def padding(lengths, length):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]  # (B, S)


def make_encoder(num_layers=3, **kwargs):
    encoder = TransformerEncoder(
        num_layers, num_heads=2, intermediate_dim=16, dropout=0.0, **kwargs
    )
    encoder.build((None, None, D))
    return encoder


@pytest.fixture
def x(rng):
    return rng.normal(size=(B, S, D)).astype("float32")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_is_the_blocks_in_order_plus_final_norm_for_pre_norm(x, normalize_first):
    encoder = make_encoder(normalize_first=normalize_first)
    mask = padding(LENGTHS, S)
    attention_mask = np.tril(np.ones((S, S), bool))[None]
    expected = x
    for block in encoder.blocks:
        assert block.normalize_first == normalize_first
        expected = block(expected, padding_mask=mask, attention_mask=attention_mask)
    if normalize_first:
        expected = encoder.final_norm(expected)
    else:
        assert encoder.final_norm is None
    outputs = encoder(x, padding_mask=mask, attention_mask=attention_mask)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-6)


def test_blocks_have_their_own_weights():
    encoder = make_encoder(num_layers=3)
    assert [type(block) for block in encoder.blocks] == [TransformerEncoderBlock] * 3
    block_weights = len(encoder.blocks[0].weights)
    assert len(encoder.weights) == 3 * block_weights
    assert len({id(w) for w in encoder.weights}) == 3 * block_weights
    assert len(make_encoder(normalize_first=True).weights) == 3 * block_weights + 2


@pytest.mark.parametrize("normalize_first", [False, True])
def test_padded_positions_do_not_change_real_positions(x, rng, normalize_first):
    encoder = make_encoder(normalize_first=normalize_first)
    mask = padding(LENGTHS, S)
    changed = np.where(mask[..., None], x, rng.normal(size=x.shape)).astype("float32")
    before = to_numpy(encoder(x, padding_mask=mask))
    np.testing.assert_allclose(to_numpy(encoder(changed, padding_mask=mask))[mask], before[mask],
                               atol=1e-5)


def test_reads_and_carries_the_keras_mask(x):
    encoder = make_encoder()
    mask = padding(LENGTHS, S)
    inputs = keras.ops.convert_to_tensor(x)
    set_keras_mask(inputs, keras.ops.convert_to_tensor(mask))
    outputs = encoder(inputs)
    np.testing.assert_array_equal(to_numpy(outputs), to_numpy(encoder(x, padding_mask=mask)))
    assert not np.allclose(to_numpy(outputs), to_numpy(encoder(x)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(get_keras_mask(outputs)), mask)


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="num_layers=0"):
        TransformerEncoder(0, num_heads=2, intermediate_dim=16)
    with pytest.raises(ValueError, match="num_heads=-1"):
        TransformerEncoder(2, num_heads=-1, intermediate_dim=16)
    with pytest.raises(ValueError, match="hidden size 8 and num_heads=3"):
        TransformerEncoder(2, num_heads=3, intermediate_dim=16)(np.zeros((1, 2, 8), "float32"))


def test_config_round_trip():
    encoder = TransformerEncoder(
        4, num_heads=2, intermediate_dim=32, dropout=0.2, activation="gelu",
        layer_norm_epsilon=1e-6, normalize_first=True, name="stack",
    )
    config = encoder.get_config()
    assert config["num_layers"] == 4 and config["normalize_first"] is True
    restored = TransformerEncoder.from_config(config)
    assert restored.get_config() == config
    assert len(restored.blocks) == 4


IDS = np.array([[3, 4, 5, 6, 0, 0], [0, 0, 0, 0, 0, 0], [7, 8, 9, 0, 0, 0]], "int32")


def tiny_model(normalize_first=False):
    ids = keras.Input((None,), dtype="int32")
    x = TokenAndPositionEmbedding(20, 16, D)(ids)
    x = TransformerEncoder(2, num_heads=2, intermediate_dim=16, normalize_first=normalize_first)(x)
    return keras.Model(ids, keras.layers.Dense(20, dtype="float32")(x), name="encoder")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_keras_file_round_trip(normalize_first, save_and_load):
    model = tiny_model(normalize_first)
    restored = save_and_load(model)
    np.testing.assert_array_equal(to_numpy(restored(IDS)), to_numpy(model(IDS)))
    assert len(restored.layers[2].blocks) == 2


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_forward_and_training_step(dtype_policy):
    model = tiny_model(normalize_first=True)
    encoder = model.layers[2]
    compute_dtype = dtype_policy.removeprefix("mixed_")
    assert all(block.compute_dtype == compute_dtype for block in encoder.blocks)
    assert np.isfinite(to_numpy(model(IDS))).all()
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    history = model.fit(IDS, IDS, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(to_numpy(w)).all() for w in encoder.weights)
