"""Private base classes holding what encoder and decoder layers share.

Shape letters: B batch, T target length, S source length, D hidden dim,
H heads, Dh head dim.
"""

import keras
from keras import ops

from keras_transformer.layers.feed_forward import FeedForward
from keras_transformer.layers.multi_head_attention import MultiHeadAttention
from keras_transformer.layers.validation import (
    check_positive_int,
    check_rank,
    check_rate,
)


class TransformerBlockBase(keras.layers.Layer):
    """Configuration, sub-layer factories and the residual wrapper of a block.

    A sub-layer is wrapped as `LayerNorm(x + Dropout(Sublayer(x)))` (post-norm,
    sections 3.1 and 5.4) or as `x + Dropout(Sublayer(LayerNorm(x)))` with
    `normalize_first=True` (pre-norm).
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.1,
        activation="relu",
        layer_norm_epsilon=1e-5,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("num_heads", num_heads)
        check_positive_int("intermediate_dim", intermediate_dim)
        check_rate("dropout", dropout)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = normalize_first
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _hidden_dim(self, inputs_shape):
        check_rank(type(self).__name__, "inputs", inputs_shape, 3)
        hidden_dim = inputs_shape[-1]
        if hidden_dim is None or hidden_dim % self.num_heads:
            raise ValueError(
                f"{type(self).__name__}: the hidden size must be divisible by "
                f"`num_heads`. Received hidden size {hidden_dim} and "
                f"num_heads={self.num_heads}."
            )
        return hidden_dim

    def _attention(self, hidden_dim, name):
        return MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _feed_forward(self, inputs_shape):
        layer = FeedForward(
            self.intermediate_dim,
            activation=self.activation,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        layer.build(inputs_shape)
        return layer

    def _norm_and_dropout(self, inputs_shape, name):
        norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=f"{name}_norm"
        )
        norm.build(inputs_shape)
        dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name=f"{name}_dropout"
        )
        return norm, dropout

    def _normalize_first(self, x, norm):
        """The sub-layer's input: LayerNorm(x) for pre-norm, else x."""
        return norm(x) if self.normalize_first else x

    def _add_and_normalize(self, x, y, norm, dropout, training):
        """x + Dropout(y), then LayerNorm for post-norm."""
        x = ops.add(x, dropout(y, training=training))
        return x if self.normalize_first else norm(x)

    def compute_output_shape(self, inputs_shape, *args, **kwargs):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "normalize_first": self.normalize_first,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


class TransformerStackBase(keras.layers.Layer):
    """A stack of `num_layers` blocks of `block_class`, plus the final
    LayerNorm that pre-norm (`normalize_first=True`) needs."""

    block_class = None

    def __init__(self, num_layers, **block_kwargs):
        layer_kwargs = {
            key: block_kwargs.pop(key)
            for key in ("name", "dtype", "trainable")
            if key in block_kwargs
        }
        super().__init__(**layer_kwargs)
        check_positive_int("num_layers", num_layers)
        self.num_layers = num_layers
        self.block_kwargs = block_kwargs
        self.blocks = [
            self.block_class(dtype=self.dtype_policy, name=f"block_{i}", **block_kwargs)
            for i in range(num_layers)
        ]
        self.normalize_first = self.blocks[0].normalize_first
        self.supports_masking = True

    def _build_final_norm(self, inputs_shape):
        self.final_norm = None
        if self.normalize_first:
            self.final_norm = keras.layers.LayerNormalization(
                epsilon=self.blocks[0].layer_norm_epsilon,
                dtype=self.dtype_policy,
                name="final_norm",
            )
            self.final_norm.build(inputs_shape)

    def _finish(self, x):
        return x if self.final_norm is None else self.final_norm(x)

    def compute_output_shape(self, inputs_shape, *args, **kwargs):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        block_config = self.blocks[0].get_config()
        for key in ("name", "dtype", "trainable"):
            block_config.pop(key, None)
        config.update({"num_layers": self.num_layers, **block_config})
        return config
