"""Initializer helpers shared by the layers."""

import math

import keras


def clone_initializer(initializer):
    """A fresh copy of `initializer`, for one weight.

    A Keras 3 initializer without a seed picks its seed once, when it is
    created, and then gives the same values at every call. A layer that
    passed one instance to several weights would start them identical (all
    eight attention kernels of a decoder block, before this was used), so
    every sublayer gets its own copy, as `keras.layers.MultiHeadAttention`
    does. Copies of an initializer with an integer seed still repeat it.
    """
    if isinstance(initializer, keras.initializers.Initializer):
        return initializer.__class__.from_config(initializer.get_config())
    return initializer


@keras.saving.register_keras_serializable(package="keras_transformer")
class PerHeadKernelInitializer(keras.initializers.Initializer):
    """Draws an attention projection kernel with its per-head shape, then flattens it.

    `MultiHeadAttention` stores its query, key and value kernels as
    (D, H * Dh) matrices; they are drawn as (D, H, Dh), and the output
    kernel as (H, Dv, D). A fan-based initializer (glorot, he, lecun) then
    takes its fans over all axes of that shape, as it did for the
    `EinsumDense` kernels of `keras.layers.MultiHeadAttention` (and
    KerasHub) until keras-team/keras#22789 changed `compute_fans`. For
    glorot-uniform with D = 256 and H = 4 the limit is 0.019 for queries,
    keys and values (0.108 with the fans of the 2-D matrix) and 0.068 for
    the output: attention starts close to uniform and the values small. On
    Multi30k this reached a lower training loss for the same steps than
    the 2-D fans (docs/performance.md). Initializers that do not use fans,
    such as `random_normal`, draw the same distribution either way.

    Args:
        initializer: a Keras initializer or its name; copied, so that
            every kernel gets its own values (see `clone_initializer`).
        head_shape: the per-head kernel shape, e.g. (D, H, Dh).
    """

    def __init__(self, initializer, head_shape):
        self.initializer = clone_initializer(keras.initializers.get(initializer))
        self.head_shape = tuple(int(size) for size in head_shape)

    def __call__(self, shape, dtype=None):
        if math.prod(shape) != math.prod(self.head_shape):
            raise ValueError(
                f"PerHeadKernelInitializer was built for a kernel of per-head shape "
                f"{self.head_shape}; received a kernel of shape {tuple(shape)}."
            )
        return keras.ops.reshape(self.initializer(self.head_shape, dtype=dtype), shape)

    def get_config(self):
        return {
            "initializer": keras.initializers.serialize(self.initializer),
            "head_shape": self.head_shape,
        }
