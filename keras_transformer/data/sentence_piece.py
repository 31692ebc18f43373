"""SentencePiece subword models, the alternative to WordPiece vocabularies.

A SentencePiece model is one serialized protocol buffer (`bytes`): its pieces,
their scores and the normalization rules. Tokenization runs in the TensorFlow
graph (tensorflow-text's `SentencepieceOp`), so it can live in a `tf.data`
pipeline and inside an exported SavedModel.

Choices, the same for every language:
- byte-pair encoding (`model_type="bpe"`), the subword scheme of the paper's
  English-German models. On small corpora it fills the vocabulary with whole
  words and frequent merges, while a unigram model, which prunes a seed
  vocabulary, keeps a few hundred pieces and splits even common words
  ("Je suis" -> "▁J", "e", "▁", "s", "uis" on the generated corpus).
- `vocabulary_size` is an upper bound, as for WordPiece: a corpus with fewer
  distinct merges gets a smaller vocabulary.
- NFKC normalization (SentencePiece's "nmt_nfkc"), with case folding when
  `lowercase=True` ("nmt_nfkc_cf"). The rules are part of the model, so the
  tokenizer applies them without being told. NFKC rewrites a few characters
  ("…" -> "...", full-width letters), which therefore do not round-trip.
- every character of the training text is kept (`character_coverage=1.0`),
  so French accents are never [UNK]; characters never seen become [UNK].
- the reserved tokens are SentencePiece's control symbols, with the ids of
  `RESERVED_TOKENS`: "[PAD]" 0, "[UNK]" 1, "[START]" 2, "[END]" 3. Literal
  "[END]" in the text is plain text. An [UNK] id detokenizes to "[UNK]".
- training is single-threaded and reads every sentence, so the same texts
  give the same model, byte for byte.

Known limit: tensorflow-text's SentencepieceOp keeps its model in a resource
owned by a cached eager kernel, and `keras.utils.set_random_seed` (or
`tf.random.set_seed`) clears that cache. Tokenizing in a `tf.function` or
`tf.data` pipeline with a tokenizer built before reseeding fails with
"Resource ... SentencepieceOp ... does not exist"; seed first, then build
the tokenizer (as `translation.train` does). Eager calls and exported
SavedModels, which create their own resource, are not affected.
"""

import io
import os

import keras_hub
import sentencepiece

from keras_transformer.data.readers import DataError
from keras_transformer.data.tokenizers import (
    END_ID,
    PAD_ID,
    RESERVED_TOKENS,
    START_ID,
    UNK_ID,
    check_sequence_length,
    check_training_arguments,
)
from keras_transformer.files import write_file_atomic


def train_sentencepiece_model(
    texts: list[str], vocabulary_size: int, lowercase: bool = False
) -> bytes:
    """Learns a byte-pair-encoding SentencePiece model, in memory.

    Args:
        texts: the training sentences of one language.
        vocabulary_size: the largest vocabulary, reserved tokens included.
        lowercase: fold case before learning and tokenizing (the rule is
            stored in the model).

    Returns:
        The serialized model: ids 0 to 3 are `RESERVED_TOKENS`.

    Raises:
        ValueError: bad arguments, or a `vocabulary_size` too small to hold
            every character of the texts.

    Example:
    >>> proto = train_sentencepiece_model(["Je suis étudiant."] * 10, 40)
    >>> build_sentencepiece_tokenizer(proto).get_vocabulary()[:4]
    ['[PAD]', '[UNK]', '[START]', '[END]']

    Reference:
        Kudo and Richardson, 2018, "SentencePiece"; Sennrich et al., 2016,
        "Neural Machine Translation of Rare Words with Subword Units"
        (byte-pair encoding, used by Vaswani et al., 2017, section 5.1).
    """
    check_training_arguments(texts, vocabulary_size)
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocabulary_size,
            hard_vocab_limit=False,
            character_coverage=1.0,
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=START_ID,
            eos_id=END_ID,
            pad_piece=RESERVED_TOKENS[PAD_ID],
            unk_piece=RESERVED_TOKENS[UNK_ID],
            bos_piece=RESERVED_TOKENS[START_ID],
            eos_piece=RESERVED_TOKENS[END_ID],
            unk_surface=RESERVED_TOKENS[UNK_ID],
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as error:
        detail = str(error).strip().rsplit("] ", 1)[-1]  # without the C++ source location
        raise ValueError(
            f"SentencePiece could not learn a vocabulary of {vocabulary_size} tokens "
            f"from {len(texts)} sentences: {detail}"
        ) from None
    return model.getvalue()


def build_sentencepiece_tokenizer(
    proto: bytes, sequence_length: int | None = None
) -> keras_hub.tokenizers.SentencePieceTokenizer:
    """A SentencePiece tokenizer of a model from `train_sentencepiece_model`.

    Args:
        proto: the serialized model; read a file with
            `load_sentencepiece_model`.
        sequence_length: None for ragged output; otherwise outputs are padded
            with `PAD_ID` or truncated to this length.

    Returns:
        A `keras_hub.tokenizers.SentencePieceTokenizer` mapping strings to
        int32 ids in the TensorFlow graph.

    Example:
    >>> from keras_transformer.data.tokenizers import detokenize
    >>> tokenizer = build_sentencepiece_tokenizer(
    ...     train_sentencepiece_model(["Je suis étudiant."] * 10, 40))
    >>> detokenize(tokenizer, tokenizer(["Je suis étudiant."]))
    ['Je suis étudiant.']
    """
    if not isinstance(proto, bytes):
        raise ValueError(
            "`proto` must be a serialized SentencePiece model (bytes); read a model "
            f"file with `load_sentencepiece_model`. Received: {type(proto).__name__}"
        )
    check_sentencepiece_model(proto, "`proto`")
    check_sequence_length(sequence_length)
    return keras_hub.tokenizers.SentencePieceTokenizer(
        proto=proto, sequence_length=sequence_length, dtype="int32"
    )


def check_sentencepiece_model(
    proto: bytes, name: str, error_type: type[ValueError] = ValueError
) -> int:
    """Returns the vocabulary size of a serialized model, or raises `error_type`
    if it cannot be parsed or its ids 0 to 3 are not `RESERVED_TOKENS`."""
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(proto)
    except RuntimeError:
        raise error_type(
            f"{name} is not a SentencePiece model ({len(proto)} bytes that do not parse "
            "as a model proto): expected a model written by `save_sentencepiece_model`."
        ) from None
    size = processor.get_piece_size()
    pieces = [processor.id_to_piece(i) for i in range(min(size, len(RESERVED_TOKENS)))]
    if pieces != RESERVED_TOKENS:
        raise error_type(
            f"{name} must give ids 0 to 3 to the reserved tokens {RESERVED_TOKENS}. "
            f"Received first pieces: {pieces}"
        )
    return size


def save_sentencepiece_model(proto: bytes, path: str | os.PathLike) -> None:
    """Writes a serialized SentencePiece model, atomically.

    The bytes go to a temporary file in the same directory, which then
    replaces `path`, so a reader never sees a half-written model.

    Example:
    >>> save_sentencepiece_model(proto, "source_spm.model")  # doctest: +SKIP
    """
    if not isinstance(proto, bytes):
        raise ValueError(
            f"`proto` must be a serialized SentencePiece model (bytes). "
            f"Received: {type(proto).__name__}"
        )
    check_sentencepiece_model(proto, "`proto`")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"{path}: cannot write the SentencePiece model, the directory {directory} "
            "does not exist."
        )
    write_file_atomic(path, proto)


def load_sentencepiece_model(path: str | os.PathLike) -> bytes:
    """Reads a model written by `save_sentencepiece_model`.

    Raises:
        DataError: if the file is missing, is not a SentencePiece model, or
            does not give ids 0 to 3 to `RESERVED_TOKENS`.

    Example:
    >>> proto = load_sentencepiece_model("runs/embedded/source_spm.model")  # doctest: +SKIP
    """
    try:
        with open(path, "rb") as file:
            proto = file.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such SentencePiece model file.") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a directory, expected a SentencePiece model file.") from None
    check_sentencepiece_model(proto, str(path), error_type=DataError)
    return proto
