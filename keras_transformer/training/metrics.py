import keras
from keras import ops

from keras_transformer.training.losses import check_labels_and_logits


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedAccuracy(keras.metrics.Metric):
    """Token accuracy of the arg-max prediction, ignoring padding labels.

    Args:
        padding_id: the label id to ignore (0).

    Example:
    >>> metric = MaskedAccuracy()
    >>> logits = keras.ops.one_hot(keras.ops.array([[1, 2, 3]]), 4)
    >>> metric.update_state(keras.ops.array([[1, 3, 0]]), logits)
    >>> float(metric.result())
    0.5
    """

    def __init__(self, padding_id=0, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.padding_id = padding_id
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.cast(y_true, "int32")  # (B, T)
        check_labels_and_logits(labels.shape, y_pred.shape)
        predictions = ops.cast(ops.argmax(y_pred, axis=-1), "int32")  # (B, T)
        weights = ops.cast(ops.not_equal(labels, self.padding_id), "float32")
        if sample_weight is not None:
            weights = weights * ops.cast(sample_weight, "float32")
        matches = ops.cast(ops.equal(labels, predictions), "float32") * weights
        self.correct.assign_add(ops.sum(matches))
        self.total.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update({"padding_id": self.padding_id})
        return config
