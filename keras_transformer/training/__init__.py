"""Training pieces of the paper's recipe: schedule, loss, optimizer, and the
dtype policy for this machine."""

from keras_transformer.training.losses import MaskedSparseCategoricalCrossentropy
from keras_transformer.training.optimizers import transformer_adam
from keras_transformer.training.precision import (
    cpu_has_bfloat16_matmul,
    dtype_policy_scope,
    resolve_dtype_policy,
)
from keras_transformer.training.schedule import TransformerSchedule

__all__ = [
    "MaskedSparseCategoricalCrossentropy",
    "TransformerSchedule",
    "cpu_has_bfloat16_matmul",
    "dtype_policy_scope",
    "resolve_dtype_policy",
    "transformer_adam",
]
