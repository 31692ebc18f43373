"""Models composed from `keras_transformer.layers`."""

from keras_transformer.models.seq2seq_transformer import (
    DECODER_INPUT,
    ENCODER_INPUT,
    build_seq2seq_transformer,
)

__all__ = ["DECODER_INPUT", "ENCODER_INPUT", "build_seq2seq_transformer"]
