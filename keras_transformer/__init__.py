"""keras_transformer: Keras 3 layers for the Transformer of "Attention Is All You Need".

Shape letters, used in every module's comments and docstrings:
    B  batch (rows)                  S  source length
    T  target length                 D  hidden (model) dim
    H  attention heads               Dh head dim (D / H)
    F  feed-forward dim              V  vocabulary size
    L  layers (blocks) of a stack    K  beams, or hypotheses per row
    M  the most steps a search decodes (`max_length`), the length of a
       self-attention cache (M * K in beam search)
Masks are boolean, True = may attend (or: a real token, not padding).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_transformer import layers, models, training  # noqa: E402
from keras_transformer.models import build_seq2seq_transformer  # noqa: E402

__version__ = "0.1.0"

__all__ = ["build_seq2seq_transformer", "layers", "models", "training"]
