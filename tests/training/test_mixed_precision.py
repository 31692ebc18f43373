import keras
import numpy as np
import pytest

from keras_transformer import build_seq2seq_transformer
from keras_transformer.training import (
    MaskedAccuracy,
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
        metrics=[MaskedAccuracy()],
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
    assert model.get_layer("encoder").compute_dtype == dtype_policy.removeprefix("mixed_")
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
