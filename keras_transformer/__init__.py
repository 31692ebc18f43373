"""keras_transformer: Keras 3 layers for the Transformer of "Attention Is All You Need"."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_transformer import layers, models, training  # noqa: E402
from keras_transformer.models import build_seq2seq_transformer  # noqa: E402

__version__ = "0.1.0"

__all__ = ["build_seq2seq_transformer", "layers", "models", "training"]
