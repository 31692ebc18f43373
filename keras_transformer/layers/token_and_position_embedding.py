import math

import keras
from keras import ops

from keras_transformer.layers.position_embedding import PositionEmbedding
from keras_transformer.layers.sinusoidal_position_encoding import (
    SINUSOIDAL_LAYOUTS,
    SinusoidalPositionEncoding,
)
from keras_transformer.layers.validation import (
    check_choice,
    check_last_dim,
    check_positive_int,
    check_rank,
    check_token_ids,
)


@keras.saving.register_keras_serializable(package="keras_transformer")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embeddings scaled by sqrt(D), plus position encodings.

    Token id 0 is padding: the layer returns a Keras mask `token_ids != 0`
    that downstream layers of this package honour. Called with
    `reverse=True` on hidden states, it projects them onto the vocabulary with
    the transposed token table: the tied pre-softmax projection of section 3.4,
    plus a learned (V,) bias with `use_output_bias=True` (Marian's
    `final_logits_bias`; the embedding itself never uses it).

    Args:
        vocabulary_size: V, number of token ids.
        sequence_length: the longest sequence; the size of the learned
            position table (with `position_encoding="learned"`).
        embedding_dim: D.
        position_encoding: "sinusoidal" (section 3.5, default) or "learned".
        scale_embeddings: multiply token embeddings by sqrt(D) (section 3.4).
        max_wavelength: base wavelength of the sinusoidal encoding.
        sinusoidal_layout: "interleaved" (the paper, default) or
            "concatenated" (sines then cosines, as Marian); see
            `SinusoidalPositionEncoding`.
        use_output_bias: add a learned bias, initialized to zeros, to the
            logits of `reverse=True`.
        embeddings_initializer: initializer of the (V, D) table; defaults to
            a normal with standard deviation D^-0.5, so that scaled token
            embeddings have unit variance.

    Call arguments:
        inputs: int (B, T) token ids in [0, V) (checked when called eagerly),
            or with `reverse=True` float (B, T, D).
        start_index: absolute position of the first token (for step-by-step
            decoding).
        reverse: project hidden states to (B, T, V) float32 logits instead.

    Example:
    >>> layer = TokenAndPositionEmbedding(100, 16, 8)
    >>> x = layer(keras.ops.array([[5, 7, 0]]))
    >>> x.shape, layer(x, reverse=True).shape
    ((1, 3, 8), (1, 3, 100))

    Reference:
        Vaswani et al., 2017, sections 3.4 and 3.5.
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        embedding_dim,
        position_encoding="sinusoidal",
        scale_embeddings=True,
        max_wavelength=10000,
        embeddings_initializer=None,
        sinusoidal_layout="interleaved",
        use_output_bias=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("vocabulary_size", vocabulary_size)
        check_positive_int("sequence_length", sequence_length)
        check_positive_int("embedding_dim", embedding_dim)
        check_choice("position_encoding", position_encoding, {"sinusoidal", "learned"})
        check_choice("sinusoidal_layout", sinusoidal_layout, set(SINUSOIDAL_LAYOUTS))
        if not isinstance(use_output_bias, bool):
            raise ValueError(
                "`use_output_bias` must be True or False. Received: "
                f"use_output_bias={use_output_bias!r}"
            )
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.position_encoding = position_encoding
        self.scale_embeddings = scale_embeddings
        self.max_wavelength = max_wavelength
        self.sinusoidal_layout = sinusoidal_layout
        self.use_output_bias = use_output_bias
        if embeddings_initializer is None:
            embeddings_initializer = keras.initializers.RandomNormal(
                stddev=embedding_dim**-0.5
            )
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        if position_encoding == "sinusoidal":
            self.position_layer = SinusoidalPositionEncoding(
                max_wavelength,
                layout=sinusoidal_layout,
                dtype=self.dtype_policy,
                name="position_encoding",
            )
        else:
            self.position_layer = PositionEmbedding(
                sequence_length, dtype=self.dtype_policy, name="position_embedding"
            )
        self.supports_masking = True

    def build(self, inputs_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocabulary_size, self.embedding_dim),
            initializer=self.embeddings_initializer,
        )
        self.output_bias = None
        if self.use_output_bias:
            self.output_bias = self.add_weight(
                name="output_bias", shape=(self.vocabulary_size,), initializer="zeros"
            )
        self.position_layer.build(tuple(inputs_shape[:2]) + (self.embedding_dim,))

    def call(self, inputs, start_index=0, reverse=False):
        if reverse:
            return self._project_to_vocabulary(inputs)
        check_rank(type(self).__name__, "token ids", inputs.shape, 2)
        if "int" not in keras.backend.standardize_dtype(inputs.dtype):
            raise ValueError(
                f"{type(self).__name__} expects integer token ids of shape "
                f"(batch, length), received dtype {inputs.dtype}. Cast the "
                "ids to int32 (0 = padding)."
            )
        check_token_ids(type(self).__name__, inputs, self.vocabulary_size)
        tokens = ops.take(self.embeddings, inputs, axis=0)  # (B, T, D)
        if self.scale_embeddings:
            tokens = tokens * ops.cast(math.sqrt(self.embedding_dim), tokens.dtype)
        return tokens + self.position_layer(tokens, start_index=start_index)

    def _project_to_vocabulary(self, hidden):
        name, argument = type(self).__name__, "hidden states (reverse=True)"
        check_rank(name, argument, hidden.shape, 3)
        check_last_dim(name, argument, hidden.shape, self.embedding_dim, "`embedding_dim`")
        table = ops.cast(self.embeddings, hidden.dtype)  # (V, D)
        if hidden.shape[1] == 1:
            # One position per row, as in a decoding step: (V, D) @ (D, B), a
            # plain matrix product on the stored table. XLA on CPU fuses the
            # transposed table of `x @ table^T` into an unvectorized
            # elementwise loop when B * T is small, the slowest op of a step.
            logits = ops.transpose(ops.matmul(table, ops.transpose(hidden[:, 0])))  # (B, V)
            return self._add_output_bias(ops.cast(logits[:, None], "float32"))  # (B, 1, V)
        # A matmul, not einsum("btd,vd->btv"): TF differentiates that einsum
        # into a far slower kernel (small train step 1.72 s -> 0.95 s, no XLA).
        logits = ops.matmul(hidden, ops.transpose(table))  # (B, T, V)
        return self._add_output_bias(ops.cast(logits, "float32"))

    def _add_output_bias(self, logits):
        """float32 (B, T, V) logits plus the output bias, if any, in float32."""
        if self.output_bias is None:
            return logits
        return logits + ops.cast(self.output_bias, "float32")  # (B, T, V)

    def compute_mask(self, inputs, mask=None):
        if "int" in keras.backend.standardize_dtype(inputs.dtype):
            return ops.not_equal(inputs, 0)  # (B, T)
        return mask

    def compute_output_shape(self, inputs_shape, reverse=False):
        if reverse:
            return tuple(inputs_shape[:2]) + (self.vocabulary_size,)
        return tuple(inputs_shape) + (self.embedding_dim,)

    def compute_output_spec(self, inputs, start_index=0, reverse=False):
        shape = self.compute_output_shape(inputs.shape, reverse=reverse)
        dtype = "float32" if reverse else self.compute_dtype
        return keras.KerasTensor(shape, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "position_encoding": self.position_encoding,
                "scale_embeddings": self.scale_embeddings,
                "max_wavelength": self.max_wavelength,
                "sinusoidal_layout": self.sinusoidal_layout,
                "use_output_bias": self.use_output_bias,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
