import keras
from keras import ops

from keras_transformer.layers.validation import (
    check_choice,
    check_positive_int,
    check_rank,
    check_start_index,
)

# The orders of the D features: sin, cos, sin, cos, ... (the paper) or all
# sines, then all cosines (tensor2tensor, Marian).
SINUSOIDAL_LAYOUTS = ("interleaved", "concatenated")


@keras.saving.register_keras_serializable(package="keras_transformer")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """The fixed sinusoidal position encoding of the paper (section 3.5).

    `PE(pos, 2i) = sin(pos / max_wavelength^(2i / D))` and
    `PE(pos, 2i + 1) = cos(pos / max_wavelength^(2i / D))`, interleaved along
    the feature axis. It has no weights and no length limit.

    With `layout="concatenated"` the same D values are ordered sines first,
    then cosines: feature i < ceil(D / 2) is `sin(pos / max_wavelength^(2i / D))`
    and feature ceil(D / 2) + i is `cos(pos / max_wavelength^(2i / D))`, the
    layout of tensor2tensor and Marian (Hugging Face's
    `MarianSinusoidalPositionalEmbedding`), needed to run their checkpoints.

    Args:
        max_wavelength: the base of the geometric progression of wavelengths,
            10000 in the paper.
        layout: "interleaved" (the paper's formula, default) or
            "concatenated" (sines, then cosines).

    Call arguments:
        inputs: (B, T, D) tensor; only its shape and dtype are used.
        start_index: absolute position of the first step, for step-by-step
            decoding (int or scalar tensor). Defaults to 0.

    Returns:
        The (B, T, D) encoding for positions `start_index ... start_index+T-1`,
        in the dtype of `inputs`. Add it to the token embeddings.

    Example:
    >>> x = keras.ops.zeros((2, 5, 8))
    >>> SinusoidalPositionEncoding()(x).shape
    (2, 5, 8)

    Reference:
        Vaswani et al., 2017, "Attention Is All You Need", section 3.5.
    """

    def __init__(self, max_wavelength=10000, layout="interleaved", **kwargs):
        super().__init__(**kwargs)
        check_positive_int("max_wavelength", max_wavelength)
        check_choice("layout", layout, set(SINUSOIDAL_LAYOUTS))
        self.max_wavelength = max_wavelength
        self.layout = layout
        self.built = True

    def call(self, inputs, start_index=0):
        check_rank(type(self).__name__, "inputs", inputs.shape, 3)
        check_start_index(type(self).__name__, start_index)
        length, dim = ops.shape(inputs)[1], ops.shape(inputs)[2]
        positions = ops.cast(ops.arange(length) + start_index, "float32")  # (T,)
        features = ops.arange(dim)  # (D,)
        if self.layout == "interleaved":
            frequency_index, is_sine = features // 2, features % 2 == 0  # (D,), (D,)
        else:
            num_sines = (dim + 1) // 2
            is_sine = features < num_sines  # (D,)
            frequency_index = ops.where(is_sine, features, features - num_sines)  # (D,)
        exponents = ops.cast(2 * frequency_index, "float32") / ops.cast(dim, "float32")
        inverse_wavelengths = ops.power(float(self.max_wavelength), -exponents)  # (D,)
        angles = positions[:, None] * inverse_wavelengths[None, :]  # (T, D)
        encoding = ops.where(is_sine, ops.sin(angles), ops.cos(angles))
        encoding = ops.cast(encoding, self.compute_dtype)  # (T, D)
        return ops.broadcast_to(encoding[None], ops.shape(inputs))  # (B, T, D)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength, "layout": self.layout})
        return config
