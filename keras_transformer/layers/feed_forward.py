import keras

from keras_transformer.layers.initializers import clone_initializer
from keras_transformer.layers.validation import check_positive_int, check_rate


@keras.saving.register_keras_serializable(package="keras_transformer")
class FeedForward(keras.layers.Layer):
    """Position-wise feed-forward network: Dense(F, activation) -> Dense(D).

    `FFN(x) = max(0, x W1 + b1) W2 + b2` with the default ReLU (section 3.3),
    applied to every position separately. The output has the input's size D.

    Args:
        intermediate_dim: F, the inner size (2048 in the base model).
        activation: activation of the inner layer.
        dropout: dropout rate on the inner activations.
        kernel_initializer, bias_initializer: for both dense layers.

    Call arguments:
        inputs: (B, T, D).
        training: enables dropout.

    Returns:
        (B, T, D). Keras masks pass through unchanged.

    Example:
    >>> FeedForward(intermediate_dim=32)(keras.ops.ones((2, 3, 8))).shape
    (2, 3, 8)

    Reference:
        Vaswani et al., 2017, section 3.3.
    """

    def __init__(
        self,
        intermediate_dim,
        activation="relu",
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("intermediate_dim", intermediate_dim)
        check_rate("dropout", dropout)
        self.intermediate_dim = intermediate_dim
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="intermediate",
        )
        self.intermediate_dense.build(inputs_shape)
        self.output_dense = keras.layers.Dense(
            inputs_shape[-1],
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="output",
        )
        self.output_dense.build(tuple(inputs_shape[:-1]) + (self.intermediate_dim,))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        x = self.intermediate_dense(inputs)  # (B, T, F)
        x = self.dropout_layer(x, training=training)
        return self.output_dense(x)  # (B, T, D)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
