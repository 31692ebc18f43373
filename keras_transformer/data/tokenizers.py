"""WordPiece subword vocabularies and tokenizers, with readable detokenization.

Tokenization and `detokenize_to_strings` are TensorFlow ops, so both can live in a
`tf.data` pipeline and inside an exported SavedModel. `detokenize_to_strings`
and `detokenize` also take the SentencePiece tokenizers of `sentence_piece`.

Normalization, the same when training a vocabulary and when tokenizing:
- case is kept by default (`lowercase=False`): the reference BLEU is cased, and a
  lowercased model cannot recover case. `lowercase=True` shrinks the vocabulary
  at the price of lowercased outputs.
- accents are kept (`strip_accents=False`): French needs them ("a" and "à" differ).
- text is split on whitespace and on every punctuation character, each
  punctuation character being a token of its own: "l'homme" is "l", "'", "homme".
"""

import os

import keras_hub
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

from keras_transformer.checks import check_positive_int
from keras_transformer.data.readers import DataError
from keras_transformer.files import write_file_atomic

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]"]
PAD_ID, UNK_ID, START_ID, END_ID = range(len(RESERVED_TOKENS))

# Rewrites, applied in order by `detokenize_to_strings`, that undo the spaces the
# WordPiece detokenizer puts around every punctuation token (RE2 syntax). Rules
# that join two words run twice: a match consumes the character on its right, so
# one pass over "a - b - c" joins only every other pair.
_WORD = r"[\p{L}\p{N}]"
_SPACING_RULES = [
    # "3 . 5" -> "3.5", "1 , 000" -> "1,000", "10 : 30" -> "10:30".
    (r"(\p{N}) ([.,:]) (\p{N})", r"\1\2\3"),
    (r"(\p{N}) ([.,:]) (\p{N})", r"\1\2\3"),
    # Elision, contractions and compounds: "l ' homme" -> "l'homme",
    # "don ' t" -> "don't", "T - shirt" -> "T-shirt", "est - ce" -> "est-ce".
    (rf"({_WORD}) (['’-]) ({_WORD})", r"\1\2\3"),
    (rf"({_WORD}) (['’-]) ({_WORD})", r"\1\2\3"),
    # Paired double quotes hug their content: 'said " hi "' -> 'said "hi"'.
    (r'" ([^"]*?) "', r'"\1"'),
    # No space after opening brackets.
    (r"([(\[{$#]) ", r"\1"),
]
# No space before closing punctuation, except that French typography (which
# Tatoeba and the generated corpus follow) keeps one before "!", "?", ":" and ";".
_CLOSING_RULE = (r" ([.,!?;:%)\]}…])", r"\1")
_FRENCH_CLOSING_RULE = (r" ([.,%)\]}…])", r"\1")


# The word split of `keras_hub.tokenizers.WordPieceTokenizer(split=True,
# strip_accents=False)` (BERT's basic tokenization, RE2 syntax): whitespace and
# control characters separate words, and every punctuation mark and CJK
# character is a word of its own. tests/data/test_tokenizers.py checks that
# the split equals the tokenizer's own.
_WHITESPACE = r"\s|\p{Cc}|\p{Cf}"
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|[\p{P}]"  # ASCII non-alphanumerics too
_CJK = "|".join(
    rf"[\x{{{first}}}-\x{{{last}}}]"
    for first, last in [
        ("4E00", "9FFF"), ("3400", "4DBF"), ("20000", "2A6DF"), ("2A700", "2B73F"),
        ("2B740", "2B81F"), ("2B820", "2CEAF"), ("F900", "FAFF"), ("2F800", "2FA1F"),
    ]
)


def split_words(texts: tf.Tensor, lowercase: bool) -> tf.RaggedTensor:
    """Splits a (N,) string tensor into (N, None) words as the WordPiece tokenizer does.

    Args:
        texts: a (N,) tensor of UTF-8 strings.
        lowercase: whether to case-fold the words, as `build_tokenizer(lowercase=...)`.

    Returns:
        A ragged (N, None) string tensor of words and punctuation marks.
    """
    texts = tf.strings.regex_replace(texts, _CJK, r" \0 ")
    words = tf_text.regex_split(
        texts,
        delim_regex_pattern="|".join([_WHITESPACE, _PUNCTUATION, _CJK]),
        keep_delim_regex_pattern="|".join([_PUNCTUATION, _CJK]),
    )
    return tf_text.case_fold_utf8(words) if lowercase else words


def train_wordpiece_vocabulary(
    texts: list[str], vocabulary_size: int, lowercase: bool = False, min_count: int = 2
) -> list[str]:
    """Learns a WordPiece vocabulary, reserved tokens first.

    Args:
        texts: the training sentences of one language.
        vocabulary_size: the largest vocabulary to return, reserved tokens
            included. The learner may return fewer tokens when the corpus
            does not need more.
        lowercase: whether to lowercase text first (see the module docstring).
            Pass the same value to `build_tokenizer`.
        min_count: the lowest frequency threshold the learner may settle on
            to fill the vocabulary. KerasHub's `compute_word_piece_vocabulary`
            fixes it at 10, so on small corpora a word seen 9 times (the
            generated corpus's "étudiant") is spelled letter by letter and the
            vocabulary stays far below `vocabulary_size`.

    Returns:
        The tokens: `RESERVED_TOKENS` (ids 0 to 3), then punctuation, characters,
        whole words and `##`-prefixed word continuations.

    Example:
    >>> vocabulary = train_wordpiece_vocabulary(["Je suis étudiant."], 40)
    >>> vocabulary[:4]
    ['[PAD]', '[UNK]', '[START]', '[END]']

    Reference:
        Vaswani et al., 2017, section 5.1 (a word-piece vocabulary for
        English-French); Wu et al., 2016, "Google's Neural Machine Translation
        System", section 4.1.
    """
    check_training_arguments(texts, vocabulary_size)
    check_positive_int("min_count", min_count)
    # What `keras_hub.tokenizers.compute_word_piece_vocabulary` does, with the
    # learner's lower frequency threshold exposed.
    words = tf.data.Dataset.from_tensor_slices(texts).batch(1024).map(
        lambda text: split_words(text, lowercase)
    )
    vocabulary = wordpiece_tokenizer_learner_lib.learn(
        wordpiece_tokenizer_learner_lib.count_words(words),
        vocab_size=vocabulary_size,
        reserved_tokens=RESERVED_TOKENS,
        lower_thresh=min_count,
    )
    return vocabulary[:vocabulary_size]


def check_training_arguments(texts: list[str], vocabulary_size: int) -> None:
    """Raises a ValueError unless `texts` is a non-empty list of sentences and
    `vocabulary_size` an integer above the reserved tokens."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(
            f"`texts` must be a list of sentences. Received a string: {texts[:40]!r}"
        )
    if not texts:
        raise ValueError("`texts` must hold at least one sentence. Received 0 sentences.")
    check_vocabulary_size("vocabulary_size", vocabulary_size)


def check_vocabulary_size(name: str, value) -> None:
    """Raises a ValueError unless `value` is an int above the reserved tokens."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= len(RESERVED_TOKENS):
        raise ValueError(
            f"`{name}` must be an integer above the {len(RESERVED_TOKENS)} "
            f"reserved tokens. Received: {name}={value!r}"
        )


def build_tokenizer(
    vocabulary: list[str], sequence_length: int | None = None, lowercase: bool = False
) -> keras_hub.tokenizers.WordPieceTokenizer:
    """A WordPiece tokenizer normalizing text as `train_wordpiece_vocabulary` did.

    Args:
        vocabulary: tokens starting with `RESERVED_TOKENS`.
        sequence_length: None for ragged output; otherwise outputs are padded
            with `PAD_ID` or truncated to this length.
        lowercase: must match the value the vocabulary was trained with.

    Returns:
        A `keras_hub.tokenizers.WordPieceTokenizer` mapping strings to int32 ids;
        words it cannot spell with the vocabulary become `UNK_ID`. Literal
        "[END]" in the text is split like any other text, never read as a
        reserved token.

    Example:
    >>> tokenizer = build_tokenizer(RESERVED_TOKENS + ["je", "suis", "."])
    >>> tokenizer.tokenize(["je suis ici ."])
    [[4, 5, 1, 6]]
    """
    if isinstance(vocabulary, (str, os.PathLike)):
        raise ValueError(
            "`vocabulary` must be a list of tokens; read a vocabulary file with "
            f"`load_vocabulary`. Received: {vocabulary!r}"
        )
    _check_reserved_tokens(vocabulary, "`vocabulary`")
    _check_unique(vocabulary, "`vocabulary`")
    check_sequence_length(sequence_length)
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary,
        sequence_length=sequence_length,
        lowercase=lowercase,
        strip_accents=False,
        split=True,
        oov_token=RESERVED_TOKENS[UNK_ID],
        dtype="int32",
    )


def check_sequence_length(sequence_length) -> None:
    """Raises a ValueError unless `sequence_length` is None or a positive int."""
    check_positive_int("sequence_length", sequence_length, none_means="ragged output")


def detokenize_to_strings(
    tokenizer: keras_hub.tokenizers.Tokenizer,
    token_ids: tf.Tensor | tf.RaggedTensor,
    language: str = "en",
) -> tf.Tensor:
    """Turns a batch of ids into readable sentences, with TensorFlow ops only.

    Each row is read up to its first `END_ID`; `PAD_ID` and `START_ID` are
    dropped, `UNK_ID` stays as "[UNK]". The spaces WordPiece puts around
    punctuation are removed where the language wants none: "student ." ->
    "student.", "l ' homme" -> "l'homme", "T - shirt" -> "T-shirt",
    "3 . 5" -> "3.5"; for French, "Va !" keeps its space. Known limits:
    "dogs ' toys" becomes "dogs'toys" and a spaced dash "a - b" becomes "a-b".
    A SentencePiece tokenizer keeps the spaces of the text, so its output is
    left as it detokenizes.

    Args:
        tokenizer: the WordPiece or SentencePiece tokenizer that produced the
            ids.
        token_ids: int (B, T), dense or ragged.
        language: code of the text's language. `"fr"` keeps French spacing
            before "!", "?", ":" and ";"; any other code follows English.

    Returns:
        A string tensor of shape (B,).

    Example:
    >>> tokenizer = build_tokenizer(RESERVED_TOKENS + ["I", "am", "here", "."])
    >>> detokenize_to_strings(tokenizer, [[2, 4, 5, 6, 7, 3, 0]]).numpy()
    array([b'I am here.'], dtype=object)
    """
    if isinstance(token_ids, tf.RaggedTensor):
        token_ids = token_ids.to_tensor(default_value=PAD_ID)
    token_ids = tf.convert_to_tensor(token_ids)
    if not token_ids.dtype.is_integer:
        raise ValueError(
            f"`token_ids` must be integer token ids. Received dtype {token_ids.dtype.name}."
        )
    token_ids = tf.cast(token_ids, "int32")  # (B, T)
    if token_ids.shape.rank != 2:
        raise ValueError(f"`token_ids` must have shape (B, T). Received: {token_ids.shape}")
    ended = tf.cumsum(tf.cast(token_ids == END_ID, "int32"), axis=-1) > 0  # (B, T)
    keep = ~ended & (token_ids != PAD_ID) & (token_ids != START_ID)  # (B, T)
    # Called eagerly, KerasHub's SentencePiece detokenizer returns a list of `str`.
    text = tf.convert_to_tensor(
        tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, keep)), tf.string
    )  # (B,)
    if isinstance(tokenizer, keras_hub.tokenizers.SentencePieceTokenizer):
        return text
    closing_rule = _FRENCH_CLOSING_RULE if language == "fr" else _CLOSING_RULE
    for pattern, rewrite in _SPACING_RULES + [closing_rule]:
        text = tf.strings.regex_replace(text, pattern, rewrite)
    return text


def detokenize(
    tokenizer: keras_hub.tokenizers.Tokenizer, token_ids, language: str = "en"
) -> list[str]:
    """`detokenize_to_strings` for Python callers: ids in, a list of `str` out.

    Args:
        tokenizer: the tokenizer that produced the ids.
        token_ids: int (B, T): a dense or ragged tensor, an array, or a list of
            lists of possibly different lengths.
        language: code of the text's language, as in `detokenize_to_strings`.

    Returns:
        One sentence per row.

    Example:
    >>> tokenizer = build_tokenizer(RESERVED_TOKENS + ["I", "am", "here", "."])
    >>> detokenize(tokenizer, [[2, 4, 5, 6, 7, 3], [2, 6, 3]])
    ['I am here.', 'here']
    """
    if isinstance(token_ids, (list, tuple)):
        token_ids = tf.ragged.constant(token_ids, dtype="int32", ragged_rank=1)
    text = detokenize_to_strings(tokenizer, token_ids, language)
    return [sentence.decode("utf-8") for sentence in text.numpy()]


def save_vocabulary(vocabulary: list[str], path: str | os.PathLike) -> None:
    """Writes one token per line (UTF-8), atomically.

    The tokens go to a temporary file in the same directory, which then replaces
    `path`, so a reader never sees a half-written vocabulary.

    Args:
        vocabulary: tokens starting with `RESERVED_TOKENS`.
        path: the file to write.

    Example:
    >>> save_vocabulary(RESERVED_TOKENS + ["je"], "vocabulary.fr.txt")  # doctest: +SKIP
    """
    _check_reserved_tokens(vocabulary, "`vocabulary`")
    _check_unique(vocabulary, "`vocabulary`")
    for token in vocabulary:
        if not token or "\n" in token or "\r" in token:
            raise ValueError(f"Tokens must be non-empty and on one line. Received: {token!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"{path}: cannot write the vocabulary, the directory {directory} does not exist."
        )
    write_file_atomic(path, "".join(f"{token}\n" for token in vocabulary))


def load_vocabulary(path: str | os.PathLike) -> list[str]:
    """Reads a vocabulary written by `save_vocabulary`.

    Args:
        path: a UTF-8 file with one token per line.

    Returns:
        The tokens, in id order.

    Raises:
        DataError: if the file is missing, empty, not UTF-8, does not start
            with `RESERVED_TOKENS` in order, or holds a token twice.

    Example:
    >>> vocabulary = load_vocabulary("vocabulary.fr.txt")  # doctest: +SKIP
    """
    try:
        with open(path, encoding="utf-8") as file:
            vocabulary = file.read().split("\n")
    except FileNotFoundError:
        raise DataError(f"{path}: no such vocabulary file.") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a directory, expected a vocabulary file.") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: the vocabulary is not valid UTF-8.") from None
    if vocabulary[-1] == "":
        vocabulary.pop()
    if not vocabulary:
        raise DataError(f"{path}: the vocabulary file is empty.")
    _check_reserved_tokens(vocabulary, str(path), error_type=DataError)
    _check_unique(vocabulary, str(path), error_type=DataError)
    return vocabulary


def _check_unique(
    vocabulary: list[str], name: str, error_type: type[ValueError] = ValueError
) -> None:
    seen = {}
    for token_id, token in enumerate(vocabulary):
        if token in seen:
            raise error_type(
                f"{name} must hold each token once. Received {token!r} as id "
                f"{seen[token]} and again as id {token_id} (line {token_id + 1})."
            )
        seen[token] = token_id


def _check_reserved_tokens(
    vocabulary: list[str], name: str, error_type: type[ValueError] = ValueError
) -> None:
    if list(vocabulary[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
        raise error_type(
            f"{name} must start with the reserved tokens {RESERVED_TOKENS} in this "
            f"order. Received first tokens: {list(vocabulary[: len(RESERVED_TOKENS)])}"
        )
