import keras
import numpy as np
import pytest

from keras_transformer import build_seq2seq_transformer
from keras_transformer.training import MaskedAccuracy, MaskedSparseCategoricalCrossentropy

LABELS = np.array([[3, 5, 2, 0, 0], [4, 2, 0, 0, 0]], "int32")


def one_hot_logits(predicted_ids, vocabulary_size=7):
    return np.eye(vocabulary_size, dtype="float32")[predicted_ids]


def test_counts_only_non_padding_labels():
    predictions = np.array([[3, 1, 2, 4, 4], [4, 2, 1, 1, 1]])  # 4 of 5 real tokens right
    metric = MaskedAccuracy()
    metric.update_state(LABELS, one_hot_logits(predictions))
    np.testing.assert_allclose(float(metric.result()), 4 / 5)


def test_padding_predictions_do_not_matter():
    right = np.where(LABELS == 0, 6, LABELS)
    metric = MaskedAccuracy()
    metric.update_state(LABELS, one_hot_logits(right))
    assert float(metric.result()) == 1.0


def test_accumulates_over_batches_and_resets():
    metric = MaskedAccuracy()
    metric.update_state(LABELS, one_hot_logits(LABELS))  # 5 of 5
    metric.update_state(LABELS[:1], one_hot_logits(np.full((1, 5), 1)))  # 0 of 3
    np.testing.assert_allclose(float(metric.result()), 5 / 8)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(np.zeros_like(LABELS), one_hot_logits(LABELS))
    assert float(metric.result()) == 0.0  # nothing counted, no NaN


def test_sample_weight_scales_tokens():
    predictions = np.array([[3, 1, 2, 4, 4], [4, 2, 1, 1, 1]])
    metric = MaskedAccuracy()
    row_weights = np.array([[1.0], [3.0]])
    metric.update_state(LABELS, one_hot_logits(predictions), sample_weight=row_weights)
    np.testing.assert_allclose(float(metric.result()), (2 + 3 * 2) / (3 + 3 * 2))


def test_padding_id_is_configurable():
    labels = np.where(LABELS == 0, 6, LABELS)
    metric = MaskedAccuracy(padding_id=6)
    metric.update_state(labels, one_hot_logits(np.where(labels == 6, 0, labels)))
    assert float(metric.result()) == 1.0


def test_inside_model_evaluate_equals_the_manual_computation():
    model = build_seq2seq_transformer(
        9, 7, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16, dropout=0.0,
    )
    model.compile(loss=MaskedSparseCategoricalCrossentropy(), metrics=[MaskedAccuracy()],
                  run_eagerly=True)
    source = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]], "int32")
    decoder_inputs = np.array([[1, 3, 5, 0, 0], [1, 4, 0, 0, 0]], "int32")
    data = {"encoder_token_ids": source, "decoder_token_ids": decoder_inputs}
    predictions = keras.ops.convert_to_numpy(model(data)).argmax(-1)
    real = LABELS != 0
    results = model.evaluate(data, LABELS, return_dict=True, verbose=0)
    np.testing.assert_allclose(results["masked_accuracy"], (predictions == LABELS)[real].mean())


def test_serializes():
    metric = MaskedAccuracy(padding_id=2, name="token_accuracy")
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, MaskedAccuracy)
    assert restored.get_config() == metric.get_config()
    assert restored.padding_id == 2 and restored.name == "token_accuracy"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_logits(dtype):
    metric = MaskedAccuracy()
    metric.update_state(LABELS, keras.ops.cast(one_hot_logits(LABELS), dtype))
    assert float(metric.result()) == 1.0


def keras_and_masked_accuracy(model, data, labels, sample_weight=None):
    model.compile(
        loss=MaskedSparseCategoricalCrossentropy(),
        metrics=[MaskedAccuracy(), keras.metrics.SparseCategoricalAccuracy(name="keras")],
    )
    results = model.evaluate(data, labels, sample_weight=sample_weight, return_dict=True,
                             verbose=0)
    return results["keras"], results["masked_accuracy"]


@pytest.mark.parametrize("weighted", [False, True])
def test_keras_accuracy_on_the_masked_logits_of_the_model(weighted):
    """The question of issue 22: the model's logits carry the Keras mask of the
    decoder ids, so Keras's own accuracy may already ignore padding."""
    model = build_seq2seq_transformer(
        9, 7, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16, dropout=0.0,
    )
    source = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]], "int32")
    decoder_inputs = np.array([[1, 3, 5, 0, 0], [1, 4, 0, 0, 0]], "int32")
    data = {"encoder_token_ids": source, "decoder_token_ids": decoder_inputs}
    weights = np.repeat([[1.0], [3.0]], LABELS.shape[1], axis=1) if weighted else None  # (B, T)
    keras_accuracy, masked_accuracy = keras_and_masked_accuracy(model, data, LABELS, weights)
    np.testing.assert_allclose(keras_accuracy, masked_accuracy, rtol=1e-6)


def test_keras_accuracy_counts_padding_when_the_logits_carry_no_mask():
    """Logits from outside a masked model (a custom model, a plain tensor):
    only MaskedAccuracy ignores the padding labels."""
    right_except_padding = np.where(LABELS == 0, 6, LABELS)
    keras_metric = keras.metrics.SparseCategoricalAccuracy()
    keras_metric.update_state(LABELS, one_hot_logits(right_except_padding))
    masked = MaskedAccuracy()
    masked.update_state(LABELS, one_hot_logits(right_except_padding))
    assert float(masked.result()) == 1.0
    np.testing.assert_allclose(float(keras_metric.result()), 5 / 10)
