import keras
from keras import ops

from keras_transformer.checks import check_rate
from keras_transformer.layers.masks import get_keras_mask, set_keras_mask


def check_labels_and_logits(labels_shape, logits_shape):
    """Raises ValueError unless labels (B, T) and logits (B, T, V) agree where known."""
    if len(labels_shape) != len(logits_shape) - 1 or any(
        a is not None and b is not None and a != b for a, b in zip(labels_shape, logits_shape)
    ):
        raise ValueError(
            "Expected integer labels of shape (batch, length) and logits of "
            "shape (batch, length, vocabulary). Received labels of shape "
            f"{tuple(labels_shape)} and logits of shape {tuple(logits_shape)}."
        )


def smoothed_cross_entropy(labels, logits, label_smoothing):
    """Per-token cross-entropy against `(1 - eps) * one_hot + eps / V`.

    The smoothed targets go to `ops.categorical_crossentropy` with
    `from_logits=True`, which TensorFlow runs as one fused kernel
    (`softmax_cross_entropy_with_logits`) that also produces the gradient.
    Picking the label's logit with a gather instead costs a scatter of
    (B, T, V) zeros in the backward pass: the small training step spent
    more time in that scatter than in the rest of the loss (measurements in
    docs/performance.md).

    Args:
        labels: int32 (B, T).
        logits: float (B, T, V); cast to float32.
        label_smoothing: eps.

    Returns:
        float32 (B, T) losses, padding positions included.
    """
    logits = ops.cast(logits, "float32")  # (B, T, V)
    vocabulary_size = logits.shape[-1]
    targets = ops.one_hot(labels, vocabulary_size)  # (B, T, V)
    targets = targets * (1.0 - label_smoothing) + label_smoothing / vocabulary_size
    return ops.categorical_crossentropy(targets, logits, from_logits=True)  # (B, T)


def _replicas_and_sum(value):
    """(R, the sum of `value` over the R replicas) in a `tf.distribute`
    replica context of R > 1 replicas, else (1, value)."""
    if keras.backend.backend() != "tensorflow":
        return 1, value
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 1, value
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, ops.stop_gradient(value))
    return context.num_replicas_in_sync, total


@keras.saving.register_keras_serializable(package="keras_transformer")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Token cross-entropy from logits with label smoothing, ignoring padding.

    With smoothing eps the target distribution is `1 - eps` on the label plus
    `eps / V` spread over the V classes (section 5.4, eps = 0.1). Labels equal
    to `padding_id` (0) get no loss, and the mean is taken over the other
    tokens only. A label outside [0, V) that is not padding makes the loss
    NaN rather than silently wrong.

    Under a `tf.distribute` strategy of R > 1 replicas, each replica's loss
    is the sum of its token losses divided by the token count of the global
    batch (summed across replicas), so the replicas' gradients, which the
    optimizer sums, are the gradient of the global batch's token mean, as on
    one device. (Keras's own reduction would divide by the replica's count
    and by R: a mean of the replicas' means, which weights the tokens of a
    replica holding fewer of them more.) Under JAX's
    `keras.distribution.DataParallel` the loss sees the global batch and needs
    nothing of the kind.

    Args:
        label_smoothing: eps in [0, 1).
        padding_id: the label id to ignore.

    Call arguments:
        y_true: int (B, T) labels.
        y_pred: float (B, T, V) logits.

    Returns:
        The mean loss over non-padding tokens (a scalar), computed in float32
        whatever the dtype of the logits.

    Example:
    >>> loss = MaskedSparseCategoricalCrossentropy(label_smoothing=0.0)
    >>> float(loss(keras.ops.array([[1, 0]]), keras.ops.zeros((1, 2, 4))))  # log 4
    1.3862943649291992

    Reference:
        Vaswani et al., 2017, section 5.4 (label smoothing); Szegedy et al.,
        2016 (label smoothing).
    """

    def __init__(
        self,
        label_smoothing=0.1,
        padding_id=0,
        name="masked_sparse_categorical_crossentropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        check_rate("label_smoothing", label_smoothing)
        self.label_smoothing = label_smoothing
        self.padding_id = padding_id

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true, "int32")  # (B, T)
        check_labels_and_logits(labels.shape, y_pred.shape)
        if y_pred.shape[-1] is None:
            raise ValueError(
                "Expected logits with a known vocabulary size (last dimension). "
                f"Received logits of shape {tuple(y_pred.shape)}."
            )
        losses = smoothed_cross_entropy(labels, y_pred, self.label_smoothing)  # (B, T)
        # A label outside [0, V) has no one-hot target and would silently cost
        # only the smoothing term: its loss is NaN instead, so the mean is NaN
        # and `keras.callbacks.TerminateOnNaN` stops training.
        in_range = ops.logical_and(
            ops.greater_equal(labels, 0), ops.less(labels, y_pred.shape[-1])
        )
        losses = ops.where(in_range, losses, float("nan"))
        mask = ops.not_equal(labels, self.padding_id)
        losses = ops.where(mask, losses, 0.0)
        set_keras_mask(losses, mask)
        return losses

    def __call__(self, y_true, y_pred, sample_weight=None):
        loss = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        if self.reduction not in ("sum_over_batch_size", "mean"):
            return loss
        mask = ops.not_equal(ops.cast(y_true, "int32"), self.padding_id)  # (B, T)
        if get_keras_mask(y_pred) is not None:  # Keras averages over both masks
            mask = ops.logical_and(mask, get_keras_mask(y_pred))
        tokens = ops.sum(ops.cast(mask, "float32"))
        replicas, global_tokens = _replicas_and_sum(tokens)
        if replicas == 1:
            return loss
        # `loss` is this replica's token mean divided by R (Keras's
        # `scale_loss_for_distribution`): make it the sum over the global count.
        return loss * ops.divide_no_nan(replicas * tokens, global_tokens)

    def get_config(self):
        config = super().get_config()
        config.update({"label_smoothing": self.label_smoothing, "padding_id": self.padding_id})
        return config
