import keras

from keras_transformer.layers.masks import get_keras_mask

from keras_transformer.layers.base import TransformerStackBase
from keras_transformer.layers.transformer_encoder_block import TransformerEncoderBlock
from keras_transformer.layers.validation import check_attention_mask, check_padding_mask


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerEncoder(TransformerStackBase):
    """A stack of `num_layers` `TransformerEncoderBlock`s (section 3.1).

    With `normalize_first=True` a final LayerNorm follows the last block, as
    pre-norm Transformers need.

    Args:
        num_layers: L, the number of blocks (6 in the base model).
        **block_kwargs: the arguments of `TransformerEncoderBlock`
            (`num_heads`, `intermediate_dim`, `dropout`, `activation`,
            `layer_norm_epsilon`, `normalize_first`, initializers).

    Call arguments:
        inputs: (B, S, D).
        padding_mask: optional (B, S), False at padding; defaults to the Keras
            mask of `inputs`.
        attention_mask: optional boolean mask broadcastable to (B, S, S).
        training: enables dropout.

    Returns:
        (B, S, D), carrying the Keras mask of `inputs`.

    Example:
    >>> encoder = TransformerEncoder(2, num_heads=2, intermediate_dim=16)
    >>> encoder(keras.ops.ones((1, 4, 8))).shape
    (1, 4, 8)

    Reference:
        Vaswani et al., 2017, section 3.1.
    """

    block_class = TransformerEncoderBlock

    def build(self, inputs_shape):
        for block in self.blocks:
            block.build(inputs_shape)
        self._build_final_norm(inputs_shape)

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None):
        if padding_mask is None:
            padding_mask = get_keras_mask(inputs)
        name = type(self).__name__
        check_padding_mask(name, "padding_mask", padding_mask, "inputs", inputs.shape)
        check_attention_mask(name, attention_mask, inputs.shape, inputs.shape)
        x = inputs
        for block in self.blocks:
            x = block(
                x,
                padding_mask=padding_mask,
                attention_mask=attention_mask,
                training=training,
            )
        return self._finish(x)
