import keras
import numpy as np
import pytest

from keras_transformer import build_seq2seq_transformer
from keras_transformer.layers.masks import set_keras_mask
from keras_transformer.training import MaskedSparseCategoricalCrossentropy

V = 7
LABELS = np.array([[3, 5, 2, 0, 0], [4, 2, 0, 0, 0], [6, 6, 6, 3, 2]], "int32")


def reference_loss(labels, logits, label_smoothing, padding_id=0):
    """Cross-entropy against (1 - eps) one-hot + eps / V, mean over non-padding labels."""
    logits = logits.astype("float64")
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))  # (B, T, V)
    vocabulary_size = logits.shape[-1]
    one_hot = np.eye(vocabulary_size)[labels]
    target = (1 - label_smoothing) * one_hot + label_smoothing / vocabulary_size
    per_token = -(target * log_probs).sum(-1)  # (B, T)
    return per_token[labels != padding_id].mean()


@pytest.fixture
def logits(rng):
    return rng.normal(scale=2.0, size=LABELS.shape + (V,)).astype("float32")


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
def test_matches_reference(logits, label_smoothing):
    loss = MaskedSparseCategoricalCrossentropy(label_smoothing=label_smoothing)
    np.testing.assert_allclose(float(loss(LABELS, logits)),
                               reference_loss(LABELS, logits, label_smoothing), rtol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
def test_gradient_is_softmax_minus_the_smoothed_target_over_the_real_tokens(logits):
    import tensorflow as tf

    label_smoothing = 0.1
    loss = MaskedSparseCategoricalCrossentropy(label_smoothing=label_smoothing)
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        value = loss(LABELS, variable)
    gradient = tape.gradient(value, variable).numpy()  # (B, T, V)

    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    target = (1 - label_smoothing) * np.eye(V)[LABELS] + label_smoothing / V
    real = (LABELS != 0)[..., None]
    expected = np.where(real, probabilities - target, 0.0) / real.sum()
    np.testing.assert_allclose(gradient, expected, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.function")
def test_logits_of_unknown_vocabulary_size_are_rejected_clearly():
    import tensorflow as tf

    loss = MaskedSparseCategoricalCrossentropy()
    traced = tf.function(
        lambda labels, logits: loss(labels, logits),
        input_signature=[tf.TensorSpec([None, None], tf.int32),
                         tf.TensorSpec([None, None, None], tf.float32)],
    )
    with pytest.raises(ValueError, match=r"known vocabulary size.*\(None, None, None\)"):
        traced.get_concrete_function()


@pytest.mark.parametrize("bad_label", [V, V + 5, -1])
def test_a_label_outside_the_vocabulary_makes_the_loss_nan_not_silently_wrong(logits, bad_label):
    labels = LABELS.copy()
    labels[1, 1] = bad_label
    loss = MaskedSparseCategoricalCrossentropy()
    assert np.isnan(float(loss(labels, logits)))
    assert np.isfinite(float(loss(LABELS, logits)))


def test_uniform_logits_cost_log_v_whatever_the_smoothing():
    logits = np.zeros(LABELS.shape + (V,), "float32")
    for label_smoothing in [0.0, 0.1, 0.5]:
        loss = MaskedSparseCategoricalCrossentropy(label_smoothing=label_smoothing)
        np.testing.assert_allclose(float(loss(LABELS, logits)), np.log(V), rtol=1e-6)


def test_padding_positions_are_ignored(logits, rng):
    loss = MaskedSparseCategoricalCrossentropy()
    expected = float(loss(LABELS, logits))
    changed = np.where((LABELS == 0)[..., None], rng.normal(scale=50, size=logits.shape), logits)
    np.testing.assert_allclose(float(loss(LABELS, changed.astype("float32"))), expected, rtol=1e-6)
    padded_labels = np.pad(LABELS, ((0, 0), (0, 4)))
    padded_logits = np.pad(logits, ((0, 0), (0, 4), (0, 0)), constant_values=3.0)
    np.testing.assert_allclose(float(loss(padded_labels, padded_logits)), expected, rtol=1e-6)
    padded_rows = np.pad(LABELS, ((0, 2), (0, 0)))
    padded_row_logits = np.pad(logits, ((0, 2), (0, 0), (0, 0)), constant_values=-1.0)
    np.testing.assert_allclose(float(loss(padded_rows, padded_row_logits)), expected, rtol=1e-6)


def test_mean_is_over_non_padding_tokens_only(logits):
    loss = MaskedSparseCategoricalCrossentropy(label_smoothing=0.0)
    per_token = []
    for row in range(len(LABELS)):
        for column in range(LABELS.shape[1]):
            if LABELS[row, column]:
                one = float(loss(LABELS[row : row + 1, column : column + 1],
                                 logits[row : row + 1, column : column + 1]))
                per_token.append(one)
    assert len(per_token) == (LABELS != 0).sum()
    np.testing.assert_allclose(float(loss(LABELS, logits)), np.mean(per_token), rtol=1e-5)


def test_all_padding_gives_zero_not_nan(logits):
    loss = MaskedSparseCategoricalCrossentropy()
    assert float(loss(np.zeros_like(LABELS), logits)) == 0.0


def test_padding_id_is_configurable(logits):
    labels = np.where(LABELS == 0, 6, LABELS)
    loss = MaskedSparseCategoricalCrossentropy(label_smoothing=0.1, padding_id=6)
    np.testing.assert_allclose(float(loss(labels, logits)),
                               reference_loss(labels, logits, 0.1, padding_id=6), rtol=1e-5)


def test_keras_mask_of_the_logits_is_also_honoured(logits):
    loss = MaskedSparseCategoricalCrossentropy(label_smoothing=0.1)
    logits_mask = np.ones(LABELS.shape, bool)
    logits_mask[2, 3:] = False
    masked_logits = keras.ops.convert_to_tensor(logits)
    set_keras_mask(masked_logits, keras.ops.convert_to_tensor(logits_mask))
    expected = reference_loss(np.where(logits_mask, LABELS, 0), logits, 0.1)
    np.testing.assert_allclose(float(loss(LABELS, masked_logits)), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_logits_are_reduced_in_float32(logits, dtype):
    loss = MaskedSparseCategoricalCrossentropy()
    low = keras.ops.cast(logits, dtype)
    value = loss(LABELS, low)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    rounded_logits = keras.ops.convert_to_numpy(keras.ops.cast(low, "float32"))
    reference = reference_loss(LABELS, rounded_logits, 0.1)
    np.testing.assert_allclose(float(value), reference, rtol=1e-4)


def test_loss_inside_model_fit_equals_the_manual_computation(rng):
    model = build_seq2seq_transformer(
        12, V, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16, dropout=0.0,
        max_sequence_length=8,
    )
    source = np.array([[3, 4, 5, 0], [0, 0, 0, 0], [7, 8, 9, 10]], "int32")
    shifted = np.pad(LABELS, ((0, 0), (1, 0)), constant_values=1)[:, :-1]  # start id 1
    decoder_inputs = np.where(LABELS != 0, shifted, 0)
    decoder_inputs[1] = 0  # a fully padded row
    labels = np.where(decoder_inputs != 0, LABELS, 0)
    data = {"encoder_token_ids": source, "decoder_token_ids": decoder_inputs}
    logits = keras.ops.convert_to_numpy(model(data))
    expected = reference_loss(labels, logits, 0.1)

    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=MaskedSparseCategoricalCrossentropy(label_smoothing=0.1), run_eagerly=True)
    np.testing.assert_allclose(model.evaluate(data, labels, verbose=0), expected, rtol=1e-5)
    history = model.fit(data, labels, batch_size=len(labels), epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
    assert model.evaluate(data, labels, verbose=0) < expected


def test_rejects_bad_arguments(logits):
    with pytest.raises(ValueError, match=r"in \[0, 1\)\. Received: label_smoothing=1\.0"):
        MaskedSparseCategoricalCrossentropy(label_smoothing=1.0)
    with pytest.raises(ValueError, match="Received: label_smoothing=-0.1"):
        MaskedSparseCategoricalCrossentropy(label_smoothing=-0.1)
    with pytest.raises(ValueError, match=r"labels of shape \(3, 5, 1\)"):
        MaskedSparseCategoricalCrossentropy()(LABELS[..., None], logits)


def test_serializes(logits):
    loss = MaskedSparseCategoricalCrossentropy(label_smoothing=0.2, padding_id=3, name="smoothed")
    config = loss.get_config()
    assert config["label_smoothing"] == 0.2 and config["padding_id"] == 3
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, MaskedSparseCategoricalCrossentropy)
    assert restored.get_config() == config
    assert float(restored(LABELS, logits)) == float(loss(LABELS, logits))
