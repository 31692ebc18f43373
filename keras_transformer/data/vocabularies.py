"""The two subword schemes behind one set of functions, chosen by name.

`tokenizer` is "wordpiece" (`tokenizers`) or "sentencepiece"
(`sentence_piece`). A vocabulary is what a tokenizer is built from:
- WordPiece: the list of tokens, saved as a text file of one token a line;
- SentencePiece: the serialized model (`bytes`), saved as it is.
Both start with `RESERVED_TOKENS`, ids 0 to 3.
"""

import os

import keras_hub

from keras_transformer.data.sentence_piece import (
    build_sentencepiece_tokenizer,
    load_sentencepiece_model,
    save_sentencepiece_model,
    train_sentencepiece_model,
)
from keras_transformer.data.tokenizers import (
    build_tokenizer,
    load_vocabulary,
    save_vocabulary,
    train_wordpiece_vocabulary,
)

TOKENIZERS = ("wordpiece", "sentencepiece")

Vocabulary = list[str] | bytes


def check_tokenizer(tokenizer: str) -> None:
    """Raises a ValueError unless `tokenizer` is one of `TOKENIZERS`."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(
            f"`tokenizer` must be one of {TOKENIZERS}. Received: tokenizer={tokenizer!r}"
        )


def train_vocabulary(
    tokenizer: str, texts: list[str], vocabulary_size: int, lowercase: bool = False
) -> Vocabulary:
    """Learns a vocabulary of at most `vocabulary_size` tokens from `texts`.

    Example:
    >>> train_vocabulary("wordpiece", ["Je suis étudiant."], 40)[:4]
    ['[PAD]', '[UNK]', '[START]', '[END]']
    """
    check_tokenizer(tokenizer)
    if tokenizer == "sentencepiece":
        return train_sentencepiece_model(texts, vocabulary_size, lowercase=lowercase)
    return train_wordpiece_vocabulary(texts, vocabulary_size, lowercase=lowercase)


def make_tokenizer(
    tokenizer: str,
    vocabulary: Vocabulary,
    lowercase: bool = False,
    sequence_length: int | None = None,
) -> keras_hub.tokenizers.Tokenizer:
    """The in-graph tokenizer (int32 ids) of a vocabulary.

    `lowercase` must be the value the vocabulary was trained with; a
    SentencePiece model stores it and ignores the argument.

    Example:
    >>> tokenizer = make_tokenizer("wordpiece", ["[PAD]", "[UNK]", "[START]", "[END]", "je"])
    >>> tokenizer(["je"])
    [[4]]
    """
    check_tokenizer(tokenizer)
    expected = bytes if tokenizer == "sentencepiece" else (list, tuple)
    if not isinstance(vocabulary, expected):
        raise ValueError(
            f"A {tokenizer} vocabulary must be a {_describe(tokenizer)}. Received: "
            f"{type(vocabulary).__name__}"
        )
    if tokenizer == "sentencepiece":
        return build_sentencepiece_tokenizer(vocabulary, sequence_length=sequence_length)
    return build_tokenizer(list(vocabulary), sequence_length=sequence_length, lowercase=lowercase)


def save_vocabulary_file(tokenizer: str, vocabulary: Vocabulary, path: str | os.PathLike) -> None:
    """Writes a vocabulary atomically: a text file or a SentencePiece model."""
    check_tokenizer(tokenizer)
    if tokenizer == "sentencepiece":
        save_sentencepiece_model(vocabulary, path)
    else:
        save_vocabulary(vocabulary, path)


def load_vocabulary_file(tokenizer: str, path: str | os.PathLike) -> Vocabulary:
    """Reads a vocabulary written by `save_vocabulary_file`; a DataError
    naming the file if it is missing or malformed."""
    check_tokenizer(tokenizer)
    if tokenizer == "sentencepiece":
        return load_sentencepiece_model(path)
    return load_vocabulary(path)


def _describe(tokenizer: str) -> str:
    if tokenizer == "sentencepiece":
        return "serialized SentencePiece model (bytes, see `load_sentencepiece_model`)"
    return "list of tokens (see `load_vocabulary`)"
