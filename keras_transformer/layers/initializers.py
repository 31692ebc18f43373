"""Initializer helpers shared by the layers."""

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
