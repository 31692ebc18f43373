"""Translation data: corpus readers, WordPiece and SentencePiece tokenizers and the
`tf.data` pipeline."""

from keras_transformer.data.generator import PAPER_EXAMPLE, default_splits, generate_pairs
from keras_transformer.data.pipeline import (
    DECODER_INPUT,
    ENCODER_INPUT,
    check_batch_tokens,
    make_dataset,
    padding_fraction,
    token_batch_sizes,
    token_counts,
)
from keras_transformer.data.readers import (
    DataError,
    load_corpus,
    parse_direction,
    read_parallel,
    read_tatoeba,
    split_pairs,
)
from keras_transformer.data.sentence_piece import (
    build_sentencepiece_tokenizer,
    load_sentencepiece_model,
    save_sentencepiece_model,
    train_sentencepiece_model,
)
from keras_transformer.data.tokenizers import (
    END_ID,
    PAD_ID,
    RESERVED_TOKENS,
    START_ID,
    UNK_ID,
    build_tokenizer,
    detokenize,
    detokenize_to_strings,
    load_vocabulary,
    save_vocabulary,
    train_wordpiece_vocabulary,
)
from keras_transformer.data.vocabularies import (
    TOKENIZERS,
    check_tokenizer,
    load_vocabulary_file,
    make_tokenizer,
    save_vocabulary_file,
    train_vocabulary,
)

__all__ = [
    "DECODER_INPUT",
    "DataError",
    "ENCODER_INPUT",
    "END_ID",
    "PAD_ID",
    "PAPER_EXAMPLE",
    "RESERVED_TOKENS",
    "START_ID",
    "TOKENIZERS",
    "UNK_ID",
    "build_sentencepiece_tokenizer",
    "build_tokenizer",
    "check_batch_tokens",
    "check_tokenizer",
    "default_splits",
    "detokenize",
    "detokenize_to_strings",
    "generate_pairs",
    "load_corpus",
    "load_sentencepiece_model",
    "load_vocabulary",
    "load_vocabulary_file",
    "make_dataset",
    "make_tokenizer",
    "padding_fraction",
    "parse_direction",
    "read_parallel",
    "read_tatoeba",
    "save_sentencepiece_model",
    "save_vocabulary",
    "save_vocabulary_file",
    "split_pairs",
    "token_batch_sizes",
    "token_counts",
    "train_sentencepiece_model",
    "train_vocabulary",
    "train_wordpiece_vocabulary",
]
