import keras

from keras_transformer.layers.masks import get_keras_mask

from keras_transformer.layers.base import TransformerBlockBase


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerEncoderBlock(TransformerBlockBase):
    """One encoder layer: self-attention, then a feed-forward network.

    Each sub-layer is `LayerNorm(x + Dropout(Sublayer(x)))` as in the paper
    (post-norm), or `x + Dropout(Sublayer(LayerNorm(x)))` with
    `normalize_first=True` (pre-norm, steadier for deep stacks).

    Args:
        num_heads: H; the hidden size D of the inputs must be divisible by it.
        intermediate_dim: F, inner size of the feed-forward network.
        dropout: residual and attention dropout rate (P_drop, 0.1 in the paper).
        activation: feed-forward activation.
        layer_norm_epsilon: epsilon of the LayerNorms.
        normalize_first: pre-norm instead of the paper's post-norm.
        kernel_initializer, bias_initializer: for all dense layers.

    Call arguments:
        inputs: (B, S, D).
        padding_mask: optional (B, S) boolean, False at padding. Defaults to
            the Keras mask of `inputs`.
        attention_mask: optional boolean mask broadcastable to (B, S, S).
        training: enables dropout.

    Returns:
        (B, S, D), carrying the Keras mask of `inputs`.

    Example:
    >>> block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16)
    >>> block(keras.ops.ones((1, 4, 8))).shape
    (1, 4, 8)

    Reference:
        Vaswani et al., 2017, section 3.1 (encoder) and 5.4 (dropout).
    """

    def build(self, inputs_shape):
        hidden_dim = self._hidden_dim(inputs_shape)
        self.self_attention = self._attention(hidden_dim, "self_attention")
        self.self_attention.build(inputs_shape, inputs_shape)
        self.attention_norm, self.attention_dropout = self._norm_and_dropout(
            inputs_shape, "self_attention"
        )
        self.feed_forward = self._feed_forward(inputs_shape)
        self.feed_forward_norm, self.feed_forward_dropout = self._norm_and_dropout(
            inputs_shape, "feed_forward"
        )

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None):
        if padding_mask is None:
            padding_mask = get_keras_mask(inputs)
        x = inputs
        y = self._normalize_first(x, self.attention_norm)
        y = self.self_attention(
            y, y, value_mask=padding_mask, attention_mask=attention_mask, training=training
        )
        x = self._add_and_normalize(x, y, self.attention_norm, self.attention_dropout, training)
        y = self.feed_forward(self._normalize_first(x, self.feed_forward_norm), training=training)
        return self._add_and_normalize(
            x, y, self.feed_forward_norm, self.feed_forward_dropout, training
        )
