"""In-graph input cleanup and the settings checks the exports share.

Shape letters: see `keras_transformer` (B, S).

Every function here is TensorFlow graph code (or a pure Python check), so the
SavedModel serves the same cleanup the tests exercise.
"""

import keras_hub
import tensorflow as tf

from keras_transformer.data.tokenizers import END_ID, PAD_ID, UNK_ID
from keras_transformer.decoding.beam import check_beam_settings
from keras_transformer.layers.validation import check_choice, check_positive_int
from keras_transformer.models import Seq2SeqTransformer

DECODINGS = ("greedy", "beam")


def clean_text(text: tf.Tensor) -> tf.Tensor:
    """Strings (B,) made safe to tokenize.

    Invalid UTF-8 bytes become U+FFFD (a gRPC client may send any bytes),
    so that the regular expressions and the tokenizer see valid UTF-8;
    every run of whitespace becomes one space, and leading and trailing
    whitespace goes.

    Example:
    >>> clean_text(tf.constant([b"  Je  suis ici. ", b"caf\\xe9"])).numpy()
    array([b'Je suis ici.', b'caf\\xef\\xbf\\xbd'], dtype=object)
    """
    text = tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replace_control_characters=False
    )
    text = tf.strings.regex_replace(text, r"\s+", " ")
    return tf.strings.strip(text)


def source_token_ids(
    tokenizer: keras_hub.tokenizers.WordPieceTokenizer,
    text: tf.Tensor,
    max_input_length: int,
) -> tf.Tensor:
    """The encoder input of cleaned strings, as the training pipeline builds it.

    Each row is its WordPiece tokens, cut to `max_input_length - 1`, then
    `END_ID` (see `keras_transformer.data.pipeline`); an empty string gives
    `[END_ID]` alone. Words the vocabulary cannot spell (other scripts,
    for instance) are `UNK_ID`.

    Args:
        tokenizer: the source tokenizer from `build_tokenizer`.
        text: strings (B,), cleaned with `clean_text`.
        max_input_length: the most encoder tokens per row, `END_ID` included.

    Returns:
        int32 (B, S), S <= max_input_length, padded with `PAD_ID`.
    """
    token_ids = tf.cast(tokenizer(text), tf.int32)  # (B, None) ragged
    if not isinstance(token_ids, tf.RaggedTensor):
        token_ids = tf.RaggedTensor.from_tensor(token_ids, padding=PAD_ID)
    token_ids = token_ids[:, : max_input_length - 1]
    ends = tf.fill((token_ids.nrows(), 1), END_ID)  # (B, 1)
    return tf.concat([token_ids, ends], axis=1).to_tensor(default_value=PAD_ID)  # (B, S)


def clean_token_ids(
    encoder_token_ids: tf.Tensor, vocabulary_size: int, max_input_length: int
) -> tf.Tensor:
    """Client-made encoder ids made safe for the model.

    Ids outside [0, vocabulary_size) become `UNK_ID`. Rows longer than
    `max_input_length` tokens are cut to `max_input_length - 1` tokens and
    `END_ID`, as `source_token_ids` cuts text; the ids are then at most
    `max_input_length` wide.

    Args:
        encoder_token_ids: int32 (B, S), tokens then `END_ID`, 0-padded.
        vocabulary_size: the source vocabulary size.
        max_input_length: the most encoder tokens per row.

    Returns:
        int32 (B, min(S, max_input_length)).
    """
    ids = tf.where(
        (encoder_token_ids < 0) | (encoder_token_ids >= vocabulary_size), UNK_ID, encoder_token_ids
    )  # (B, S)
    too_long = tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1) > max_input_length  # (B,)
    ids = ids[:, :max_input_length]
    last = tf.range(tf.shape(ids)[1]) == max_input_length - 1  # (S,)
    return tf.where(too_long[:, None] & last, END_ID, ids)


def check_lengths(
    model: Seq2SeqTransformer, max_input_length, max_output_length
) -> tuple[int, int]:
    """The lengths to export, defaulting to the model's `max_sequence_length`.

    Learned position tables cap the lengths at their size; sinusoidal
    encodings do not, but the model never saw longer sequences in training.
    """
    encoder_embedding, decoder_embedding = model.encoder_embedding, model.decoder_embedding
    if max_input_length is None:
        max_input_length = encoder_embedding.sequence_length
    if max_output_length is None:
        max_output_length = decoder_embedding.sequence_length
    check_positive_int("max_input_length", max_input_length)
    check_positive_int("max_output_length", max_output_length)
    if max_input_length < 2:
        raise ValueError(
            "`max_input_length` must be at least 2: one source token and [END]. "
            f"Received: max_input_length={max_input_length}"
        )
    for name, value, limit, side in (
        ("max_input_length", max_input_length, model.max_source_length, "source"),
        ("max_output_length", max_output_length, model.max_target_length, "target"),
    ):
        if limit is not None and value > limit:
            raise ValueError(
                f"The model has learned {side} positions for {limit} tokens, so "
                f"`{name}` can be at most {limit}. Received: {name}={value}"
            )
    return int(max_input_length), int(max_output_length)


def check_decoding(
    decoding: str, beam_size: int, length_penalty: float, vocabulary_size: int
) -> None:
    """Raises a ValueError for an unknown decoding or bad beam settings."""
    check_choice("decoding", decoding, DECODINGS)
    check_beam_settings(beam_size, length_penalty, vocabulary_size if decoding == "beam" else None)
