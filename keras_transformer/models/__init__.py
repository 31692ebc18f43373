"""Models composed from `keras_transformer.layers`."""

from keras_transformer.models.seq2seq_transformer import (
    DECODER_INPUT,
    ENCODER_INPUT,
    Seq2SeqTransformer,
    build_seq2seq_transformer,
    check_seq2seq_model,
)

__all__ = [
    "DECODER_INPUT",
    "ENCODER_INPUT",
    "Seq2SeqTransformer",
    "build_seq2seq_transformer",
    "check_seq2seq_model",
]
