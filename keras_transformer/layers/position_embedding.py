import keras
from keras import ops

from keras_transformer.layers.validation import (
    check_last_dim,
    check_positive_int,
    check_rank,
    check_start_index,
)


@keras.saving.register_keras_serializable(package="keras_transformer")
class PositionEmbedding(keras.layers.Layer):
    """Learned position embeddings, one trainable vector per position.

    The paper (section 3.5) reports these perform about as well as the
    sinusoidal encoding, but they cannot extrapolate past `sequence_length`.

    Args:
        sequence_length: the number of positions that have an embedding.
        initializer: initializer of the (sequence_length, D) table.

    Call arguments:
        inputs: (B, T, D) tensor; only its shape and dtype are used.
        start_index: absolute position of the first step, for step-by-step
            decoding. Positions `start_index ... start_index+T-1` must be
            below `sequence_length`.

    Returns:
        The (B, T, D) embeddings of the positions, to add to the tokens.

    Example:
    >>> layer = PositionEmbedding(sequence_length=16)
    >>> layer(keras.ops.zeros((2, 5, 8))).shape
    (2, 5, 8)

    Reference:
        Vaswani et al., 2017, section 3.5 (learned positional embeddings).
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        check_positive_int("sequence_length", sequence_length)
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        check_rank(type(self).__name__, "inputs", inputs_shape, 3)
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, inputs_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, inputs, start_index=0):
        name = type(self).__name__
        built_dim = self.position_embeddings.shape[-1]
        check_last_dim(name, "inputs", inputs.shape, built_dim, "the size it was built with")
        check_start_index(name, start_index)
        length = inputs.shape[1]
        if isinstance(length, int) and isinstance(start_index, int):
            if start_index + length > self.sequence_length:
                raise ValueError(
                    f"{name} has {self.sequence_length} learned "
                    f"positions (`sequence_length`), but received a sequence "
                    f"of length {length} starting at position {start_index}. "
                    "Build it with a larger `sequence_length` or truncate "
                    "the inputs."
                )
        length, dim = ops.shape(inputs)[1], ops.shape(inputs)[2]
        embeddings = ops.slice(
            ops.convert_to_tensor(self.position_embeddings),
            (start_index, 0),
            (length, dim),
        )  # (T, D)
        embeddings = ops.cast(embeddings, self.compute_dtype)
        return ops.broadcast_to(embeddings[None], ops.shape(inputs))  # (B, T, D)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
