"""The encoder-decoder Transformer as a functional Keras model.

Shape letters: B batch, S source length, T target length, D hidden dim,
V target vocabulary.
"""

import keras

from keras_transformer.layers import (
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
)
from keras_transformer.layers.validation import (
    check_choice,
    check_positive_int,
    check_rate,
)

ENCODER_INPUT = "encoder_token_ids"
DECODER_INPUT = "decoder_token_ids"


def build_seq2seq_transformer(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    num_layers: int = 6,
    hidden_dim: int = 512,
    num_heads: int = 8,
    intermediate_dim: int = 2048,
    dropout: float = 0.1,
    max_sequence_length: int = 256,
    normalize_first: bool = False,
    tie_embeddings: bool = True,
    num_encoder_layers: int | None = None,
    num_decoder_layers: int | None = None,
    position_encoding: str = "sinusoidal",
    activation: str = "relu",
    layer_norm_epsilon: float = 1e-5,
    name: str = "seq2seq_transformer",
) -> keras.Model:
    """Builds the Transformer of "Attention Is All You Need" (section 3).

    Defaults are the paper's base model (table 3): 6 + 6 layers, D = 512,
    8 heads, F = 2048, P_drop = 0.1, sinusoidal positions, post-norm, and the
    target embedding shared with the pre-softmax projection (section 3.4).

    Args:
        source_vocabulary_size: number of source token ids (0 = padding).
        target_vocabulary_size: V, number of target token ids (0 = padding).
        num_layers: blocks in the encoder and in the decoder.
        hidden_dim: D; must be divisible by `num_heads`.
        num_heads: H.
        intermediate_dim: F.
        dropout: P_drop, on embeddings, residuals and attention weights.
        max_sequence_length: the longest source or target sequence (the size
            of the learned position tables).
        normalize_first: pre-norm blocks with final LayerNorms.
        tie_embeddings: use the target embedding matrix as the output
            projection; otherwise a separate Dense layer.
        num_encoder_layers, num_decoder_layers: override `num_layers`.
        position_encoding: "sinusoidal" or "learned".
        activation: feed-forward activation.
        layer_norm_epsilon: LayerNorm epsilon.
        name: the model name.

    Returns:
        A functional `keras.Model` taking `{"encoder_token_ids": int32 (B, S),
        "decoder_token_ids": int32 (B, T)}` and returning float32 logits
        (B, T, V). Its layers are named "encoder_embedding", "encoder",
        "decoder_embedding", "decoder" and, untied, "logits"; decoding finds
        them by name. The logits carry the Keras mask of the decoder ids, so
        Keras losses and metrics ignore padded positions.

    Example:
    >>> model = build_seq2seq_transformer(100, 120, num_layers=1, hidden_dim=16,
    ...     num_heads=2, intermediate_dim=32)
    >>> ids = keras.ops.ones((2, 7), "int32")
    >>> model({"encoder_token_ids": ids, "decoder_token_ids": ids}).shape
    (2, 7, 120)

    Reference:
        Vaswani et al., 2017, section 3 and table 3.
    """
    if num_encoder_layers is None:
        num_encoder_layers = num_layers
    if num_decoder_layers is None:
        num_decoder_layers = num_layers
    for arg_name, value in (
        ("source_vocabulary_size", source_vocabulary_size),
        ("target_vocabulary_size", target_vocabulary_size),
        ("num_layers", num_layers),
        ("hidden_dim", hidden_dim),
        ("num_heads", num_heads),
        ("intermediate_dim", intermediate_dim),
        ("max_sequence_length", max_sequence_length),
        ("num_encoder_layers", num_encoder_layers),
        ("num_decoder_layers", num_decoder_layers),
    ):
        check_positive_int(arg_name, value)
    check_rate("dropout", dropout)
    if (
        isinstance(layer_norm_epsilon, bool)
        or not isinstance(layer_norm_epsilon, (int, float))
        or layer_norm_epsilon <= 0
    ):
        raise ValueError(
            "`layer_norm_epsilon` must be a number > 0. "
            f"Received: layer_norm_epsilon={layer_norm_epsilon!r}"
        )
    check_choice("position_encoding", position_encoding, {"sinusoidal", "learned"})
    if hidden_dim % num_heads:
        raise ValueError(
            "`hidden_dim` must be divisible by `num_heads`. Received "
            f"hidden_dim={hidden_dim}, num_heads={num_heads}."
        )

    block_kwargs = {
        "num_heads": num_heads,
        "intermediate_dim": intermediate_dim,
        "dropout": dropout,
        "activation": activation,
        "layer_norm_epsilon": layer_norm_epsilon,
        "normalize_first": normalize_first,
    }
    embedding_kwargs = {
        "sequence_length": max_sequence_length,
        "embedding_dim": hidden_dim,
        "position_encoding": position_encoding,
    }
    encoder_token_ids = keras.Input((None,), dtype="int32", name=ENCODER_INPUT)  # (B, S)
    decoder_token_ids = keras.Input((None,), dtype="int32", name=DECODER_INPUT)  # (B, T)

    x = TokenAndPositionEmbedding(
        source_vocabulary_size, name="encoder_embedding", **embedding_kwargs
    )(encoder_token_ids)  # (B, S, D), masked
    x = keras.layers.Dropout(dropout, name="encoder_embedding_dropout")(x)
    encoder_outputs = TransformerEncoder(
        num_encoder_layers, name="encoder", **block_kwargs
    )(x)  # (B, S, D)

    decoder_embedding = TokenAndPositionEmbedding(
        target_vocabulary_size, name="decoder_embedding", **embedding_kwargs
    )
    y = decoder_embedding(decoder_token_ids)  # (B, T, D), masked
    y = keras.layers.Dropout(dropout, name="decoder_embedding_dropout")(y)
    y = TransformerDecoder(num_decoder_layers, name="decoder", **block_kwargs)(
        y, encoder_outputs
    )  # (B, T, D)

    if tie_embeddings:
        logits = decoder_embedding(y, reverse=True)  # (B, T, V)
    else:
        logits = keras.layers.Dense(target_vocabulary_size, dtype="float32", name="logits")(y)
    return keras.Model(
        {ENCODER_INPUT: encoder_token_ids, DECODER_INPUT: decoder_token_ids},
        logits,
        name=name,
    )
