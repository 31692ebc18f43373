import keras
import numpy as np
import pytest

from keras_transformer import build_seq2seq_transformer
from keras_transformer.training import (
    MaskedSparseCategoricalCrossentropy,
    transformer_adam,
)

SOURCE = np.array([[3, 4, 5, 6, 0], [7, 8, 0, 0, 0], [9, 10, 11, 0, 0], [4, 4, 5, 0, 0]], "int32")
LABELS = np.array([[6, 5, 4, 2, 0], [8, 7, 2, 0, 0], [11, 10, 9, 2, 0], [5, 4, 4, 2, 0]], "int32")


def data():
    shifted = np.pad(LABELS, ((0, 0), (1, 0)), constant_values=1)[:, :-1]  # start id 1
    decoder_inputs = np.where(LABELS != 0, shifted, 0)
    return {"encoder_token_ids": SOURCE, "decoder_token_ids": decoder_inputs}, LABELS


def small_model():
    return build_seq2seq_transformer(
        12, 12, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0,
        max_sequence_length=8,
    )


def compiled(model):
    model.compile(
        optimizer=transformer_adam(hidden_dim=16, warmup_steps=4, scale=4.0),
        loss=MaskedSparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


@pytest.mark.parametrize("dtype_policy", ["mixed_float16"], indirect=True)
def test_float16_compile_wraps_the_optimizer_in_dynamic_loss_scaling(dtype_policy):
    model = compiled(small_model())
    assert model.dtype_policy.name == "mixed_float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.optimizer.initial_scale == 2.0**15  # dynamic, from 32768 down
    assert isinstance(model.optimizer.inner_optimizer, keras.optimizers.Adam)
    assert model.optimizer.inner_optimizer.beta_2 == 0.98


@pytest.mark.parametrize("dtype_policy", ["mixed_bfloat16"], indirect=True)
def test_bfloat16_needs_no_loss_scaling(dtype_policy):
    model = compiled(small_model())
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_trains_without_nan_and_learns(dtype_policy):
    model = compiled(small_model())
    inputs, labels = data()
    assert model.encoder.compute_dtype == dtype_policy.removeprefix("mixed_")
    assert all(weight.dtype == "float32" for weight in model.trainable_weights)
    history = model.fit(inputs, labels, batch_size=4, epochs=30, verbose=0)
    losses = np.array(history.history["loss"])
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0]
    for weight in model.trainable_weights:
        assert np.isfinite(keras.ops.convert_to_numpy(weight)).all(), weight.path
    logits = model.predict(inputs, verbose=0)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()


@pytest.mark.parametrize("dtype_policy", ["mixed_float16"], indirect=True)
def test_float16_overflow_skips_the_step_and_lowers_the_scale(dtype_policy):
    """A step whose scaled gradients overflow changes no weight and halves the scale."""
    model = compiled(small_model())
    inputs, labels = data()
    model.fit(inputs, labels, batch_size=4, epochs=1, verbose=0)  # builds the optimizer
    optimizer = model.optimizer
    optimizer.dynamic_scale.assign(1e30)  # any float16 gradient times this is inf
    before = [keras.ops.convert_to_numpy(weight) for weight in model.trainable_weights]
    model.fit(inputs, labels, batch_size=4, epochs=1, verbose=0)
    after = [keras.ops.convert_to_numpy(weight) for weight in model.trainable_weights]
    assert float(optimizer.dynamic_scale) == pytest.approx(0.5e30, rel=1e-6)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


def forward_and_backward(model, inputs, labels):
    """Logits, loss and the loss's unscaled gradients under the model's dtype policy."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        logits = model(inputs, training=True)
        loss = model.loss(labels, logits)
    return logits, loss, tape.gradient(loss, model.trainable_weights)


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_long_sequences_stay_finite_forward_and_backward(dtype_policy, rng):
    """S = T = 512 with a fully padded row: 512 x 512 attention in low precision."""
    length = 512
    model = compiled(build_seq2seq_transformer(
        12, 12, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0,
        max_sequence_length=length,
    ))
    source = rng.integers(3, 12, (2, length)).astype("int32")
    labels = rng.integers(3, 12, (2, length)).astype("int32")
    source[0, 300:] = 0
    source[1], labels[1] = 0, 0  # a fully padded row
    shifted = np.pad(labels, ((0, 0), (1, 0)), constant_values=1)[:, :-1]  # start id 1
    inputs = {"encoder_token_ids": source, "decoder_token_ids": np.where(labels != 0, shifted, 0)}

    logits, loss, grads = forward_and_backward(model, inputs, labels)
    assert np.isfinite(keras.ops.convert_to_numpy(logits)).all()
    assert np.isfinite(float(loss))
    for weight, grad in zip(model.trainable_weights, grads, strict=True):
        assert np.isfinite(keras.ops.convert_to_numpy(grad)).all(), weight.path


@pytest.mark.parametrize("dtype, extreme", [("float16", 65504.0), ("bfloat16", 1e30)])
def test_extreme_logits_give_a_finite_loss_and_gradient(dtype, extreme):
    """Logits at the float16 limit (and far beyond it for bfloat16), the label on
    the smallest: the loss is about 2 * extreme, finite in float32, and its
    gradient is softmax minus the smoothed target."""
    import tensorflow as tf

    values = np.full((2, 3, 5), extreme, "float32")
    values[..., 1] = -extreme
    values[1, 2] = 0.0
    logits = tf.constant(values, dtype)
    labels = np.array([[1, 1, 1], [1, 0, 2]], "int32")  # 0 is padding
    loss_fn = MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = loss_fn(labels, logits)
    gradient = keras.ops.convert_to_numpy(keras.ops.cast(tape.gradient(loss, logits), "float32"))
    assert np.isfinite(float(loss)) and float(loss) > extreme
    assert np.isfinite(gradient).all()
    assert np.abs(gradient).max() <= 1.0


@pytest.mark.parametrize("dtype, extreme", [("float16", 6e4), ("bfloat16", 1e30)])
def test_attention_with_extreme_scores_is_finite_forward_and_backward(dtype, extreme):
    """Scores near the largest float16 value (bfloat16: 1e30) and masked keys:
    the float32 softmax gives one-hot weights, finite gradients."""
    import tensorflow as tf

    from keras_transformer.layers.multi_head_attention import scaled_dot_product_attention

    head_dim = 4
    magnitude = np.sqrt(extreme / head_dim)  # scores Q K^T / sqrt(Dh) of +-extreme / 2
    query = tf.constant(np.full((1, 2, 3, head_dim), magnitude, "float32"), dtype)  # (B, H, T, Dh)
    key = np.full((1, 2, 4, head_dim), magnitude, "float32")  # (B, H, S, Dh)
    key[:, :, 1] = -magnitude
    key = tf.constant(key, dtype)
    value = tf.constant(np.arange(32, dtype="float32").reshape(1, 2, 4, 4), dtype)
    mask = np.array([[[True, True, False, False]] * 3])  # (B, T, S)
    with tf.GradientTape() as tape:
        tape.watch([query, key, value])
        outputs, weights = scaled_dot_product_attention(query, key, value, mask)
        total = tf.reduce_sum(tf.cast(outputs, "float32"))
    assert np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(outputs, "float32"))).all()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(weights, "float32"))[0, :, :, 0], 1.0
    )
    for gradient in tape.gradient(total, [query, key, value]):
        assert np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(gradient, "float32"))).all()
