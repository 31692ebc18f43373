import keras
import numpy as np
import pytest

from keras_transformer.layers import TokenAndPositionEmbedding, TransformerEncoderBlock
from keras_transformer.layers.masks import get_keras_mask, set_keras_mask

B, S, D = 2, 6, 8
LENGTHS = [6, 3]


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


def padding(lengths, length):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]  # (B, S)


def masked(x, mask):
    """`x` as a tensor carrying the Keras mask `mask`."""
    x = keras.ops.convert_to_tensor(x)
    set_keras_mask(x, keras.ops.convert_to_tensor(mask))
    return x


def make_block(**kwargs):
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16, dropout=0.0, **kwargs)
    block.build((None, None, D))
    return block


@pytest.fixture
def x(rng):
    return rng.normal(size=(B, S, D)).astype("float32")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_wires_residuals_and_norms_as_in_the_paper(x, normalize_first):
    block = make_block(normalize_first=normalize_first, bias_initializer="random_normal")
    mask = padding(LENGTHS, S)
    outputs = to_numpy(block(x, padding_mask=mask))

    def attention(y):
        return block.self_attention(y, y, value_mask=mask)

    x = keras.ops.convert_to_tensor(x)
    if normalize_first:  # x + Sublayer(LayerNorm(x))
        y = x + attention(block.attention_norm(x))
        expected = y + block.feed_forward(block.feed_forward_norm(y))
    else:  # LayerNorm(x + Sublayer(x))
        y = block.attention_norm(x + attention(x))
        expected = block.feed_forward_norm(y + block.feed_forward(y))
    np.testing.assert_allclose(outputs, to_numpy(expected), atol=1e-5)


def test_post_norm_outputs_are_normalized(x):
    outputs = to_numpy(make_block()(x))
    np.testing.assert_allclose(outputs.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(outputs.std(-1), 1.0, atol=1e-3)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_padded_positions_do_not_change_real_positions(x, rng, normalize_first):
    block = make_block(normalize_first=normalize_first)
    mask = padding(LENGTHS, S)
    changed = np.where(mask[..., None], x, rng.normal(size=x.shape)).astype("float32")
    before = to_numpy(block(x, padding_mask=mask))
    after = to_numpy(block(changed, padding_mask=mask))
    np.testing.assert_allclose(after[mask], before[mask], atol=1e-6)
    unmasked = to_numpy(block(changed))
    assert not np.allclose(unmasked[mask], before[mask], atol=1e-3)


def test_reads_the_keras_mask_when_no_padding_mask_is_passed(x):
    block = make_block()
    mask = padding(LENGTHS, S)
    from_keras_mask = block(masked(x, mask))
    np.testing.assert_array_equal(to_numpy(from_keras_mask), to_numpy(block(x, padding_mask=mask)))
    assert not np.allclose(to_numpy(from_keras_mask), to_numpy(block(x)))
    output_mask = keras.ops.convert_to_numpy(get_keras_mask(from_keras_mask))
    np.testing.assert_array_equal(output_mask, mask)


def test_attention_mask_hides_keys(x, rng):
    block = make_block()
    attention_mask = np.ones((B, S, S), bool)
    attention_mask[:, 1:, 0] = False  # no query but the first sees key 0
    changed = x.copy()
    changed[:, 0] = rng.normal(size=(B, D))
    before = to_numpy(block(x, attention_mask=attention_mask))
    after = to_numpy(block(changed, attention_mask=attention_mask))
    np.testing.assert_allclose(after[:, 1:], before[:, 1:], atol=1e-6)
    assert not np.allclose(after[:, 0], before[:, 0])


def test_dropout_only_in_training(x):
    block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16, dropout=0.5)
    inference = to_numpy(block(x, training=False))
    np.testing.assert_array_equal(inference, to_numpy(block(x, training=False)))
    assert not np.allclose(to_numpy(block(x, training=True)), inference, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"num_heads": 0}, "num_heads=0"),
     ({"intermediate_dim": -4}, "intermediate_dim=-4"),
     ({"dropout": 1.0}, "dropout=1.0")],
)
def test_rejects_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformerEncoderBlock(**{"num_heads": 2, "intermediate_dim": 16, **kwargs})


def test_rejects_hidden_size_not_divisible_by_heads():
    with pytest.raises(ValueError, match="hidden size 10 and num_heads=3"):
        TransformerEncoderBlock(num_heads=3, intermediate_dim=16)(np.zeros((1, 4, 10), "float32"))


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"rank 3.*\(4, 8\)"):
        TransformerEncoderBlock(num_heads=2, intermediate_dim=16)(np.zeros((4, 8), "float32"))


def test_config_round_trip():
    block = TransformerEncoderBlock(
        num_heads=4, intermediate_dim=32, dropout=0.2, activation="gelu",
        layer_norm_epsilon=1e-6, normalize_first=True, kernel_initializer="he_normal",
    )
    restored = TransformerEncoderBlock.from_config(block.get_config())
    assert restored.get_config() == block.get_config()


def tiny_model(normalize_first=False):
    ids = keras.Input((None,), dtype="int32")
    x = TokenAndPositionEmbedding(20, 16, D)(ids)
    x = TransformerEncoderBlock(
        num_heads=2, intermediate_dim=16, normalize_first=normalize_first
    )(x)
    return keras.Model(ids, keras.layers.Dense(20, dtype="float32")(x), name="encoder_block")


IDS = np.array([[3, 4, 5, 6, 0, 0], [0, 0, 0, 0, 0, 0], [7, 8, 9, 0, 0, 0]], "int32")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_keras_file_round_trip(normalize_first, save_and_load):
    model = tiny_model(normalize_first)
    restored = save_and_load(model)
    np.testing.assert_array_equal(to_numpy(restored(IDS)), to_numpy(model(IDS)))
    assert restored.layers[2].normalize_first == normalize_first


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_forward_and_training_step(dtype_policy):
    model = tiny_model()
    block = model.layers[2]
    assert block.compute_dtype == dtype_policy.removeprefix("mixed_")
    outputs = to_numpy(model(IDS))
    assert np.isfinite(outputs).all()
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    before = [to_numpy(w).copy() for w in block.trainable_weights]
    history = model.fit(IDS, IDS, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = [to_numpy(w) for w in block.trainable_weights]
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.allclose(a, b) for a, b in zip(after, before))
