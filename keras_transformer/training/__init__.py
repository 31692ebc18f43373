"""Training pieces of the paper's recipe: schedule, loss, optimizer."""

from keras_transformer.training.losses import MaskedSparseCategoricalCrossentropy
from keras_transformer.training.optimizers import transformer_adam
from keras_transformer.training.schedule import TransformerSchedule

__all__ = [
    "MaskedSparseCategoricalCrossentropy",
    "TransformerSchedule",
    "transformer_adam",
]
