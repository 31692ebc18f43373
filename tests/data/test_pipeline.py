import random

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.data.pipeline import (
    DECODER_INPUT,
    ENCODER_INPUT,
    make_dataset,
    padding_fraction,
    token_counts,
)
from keras_transformer.data.tokenizers import (
    END_ID,
    PAD_ID,
    RESERVED_TOKENS,
    START_ID,
    UNK_ID,
    build_tokenizer,
)

FRENCH_WORDS = ["le", "chat", "mange", "une", "pomme", "rouge", "et", "dort", "."]
ENGLISH_WORDS = ["the", "cat", "eats", "a", "red", "apple", "and", "sleeps", "."]
SOURCE_VOCABULARY = RESERVED_TOKENS + FRENCH_WORDS
TARGET_VOCABULARY = RESERVED_TOKENS + ENGLISH_WORDS


def word_ids(sentence: str, vocabulary: list[str]) -> list[int]:
    return [vocabulary.index(word) for word in sentence.split()]


def mixed_length_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Pairs of 1 to 40 words, lengths uncorrelated with corpus order."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        length = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])
        source = " ".join(rng.choice(FRENCH_WORDS) for _ in range(length))
        target = " ".join(rng.choice(ENGLISH_WORDS) for _ in range(length + rng.randint(0, 3)))
        pairs.append((source, target))
    return pairs


@pytest.fixture(scope="module")
def tokenizers():
    return build_tokenizer(SOURCE_VOCABULARY), build_tokenizer(TARGET_VOCABULARY)


def batches(dataset: tf.data.Dataset) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [
        (
            inputs["encoder_token_ids"].numpy(),
            inputs["decoder_token_ids"].numpy(),
            labels.numpy(),
        )
        for inputs, labels in dataset
    ]


def unpadded_rows(array: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(i) for i in row if i != PAD_ID) for row in array]


def test_element_spec_and_dtypes(tokenizers):
    dataset = make_dataset(
        mixed_length_pairs(20), *tokenizers, batch_size=4, max_sequence_length=16
    )
    inputs_spec, labels_spec = dataset.element_spec
    assert set(inputs_spec) == {"encoder_token_ids", "decoder_token_ids"}
    for spec in (inputs_spec["encoder_token_ids"], inputs_spec["decoder_token_ids"], labels_spec):
        assert spec.shape.as_list() == [None, None]
        assert spec.dtype == tf.int32


def test_packs_source_decoder_input_and_labels(tokenizers):
    pairs = [("le chat mange une pomme .", "the cat eats an apple ."), ("le chat dort", "the cat")]
    dataset = make_dataset(
        pairs, *tokenizers, batch_size=2, max_sequence_length=16, bucket_boundaries=[]
    )
    ((encoder_ids, decoder_ids, labels),) = batches(dataset)
    source = word_ids(pairs[0][0], SOURCE_VOCABULARY)
    # "an" is not in the vocabulary.
    target = (
        word_ids("the cat eats", TARGET_VOCABULARY)
        + [UNK_ID]
        + word_ids("apple .", TARGET_VOCABULARY)
    )
    assert encoder_ids.shape == (2, 7) and decoder_ids.shape == labels.shape == (2, 7)
    assert encoder_ids[0].tolist() == source + [END_ID]
    assert decoder_ids[0].tolist() == [START_ID] + target
    assert labels[0].tolist() == target + [END_ID]
    short_source = word_ids("le chat dort", SOURCE_VOCABULARY)
    assert encoder_ids[1].tolist() == short_source + [END_ID, 0, 0, 0]
    assert labels[1].tolist() == word_ids("the cat", TARGET_VOCABULARY) + [END_ID, 0, 0, 0, 0]


def test_batch_invariants(tokenizers):
    dataset = make_dataset(
        mixed_length_pairs(300), *tokenizers, batch_size=16, max_sequence_length=64
    )
    for encoder_ids, decoder_ids, labels in batches(dataset):
        assert encoder_ids.shape[0] == decoder_ids.shape[0] == labels.shape[0] <= 16
        assert decoder_ids.shape == labels.shape
        # The same positions are padding in the decoder input and the labels.
        np.testing.assert_array_equal(decoder_ids != PAD_ID, labels != PAD_ID)
        for ids in (encoder_ids, decoder_ids):
            lengths = (ids != PAD_ID).sum(axis=1)
            # Padding only at the end, and no batch is all padding in its last column.
            assert all((row[:n] != PAD_ID).all() for row, n in zip(ids, lengths))
            assert lengths.max() == ids.shape[1]
        assert (decoder_ids[:, 0] == START_ID).all()
        for encoder_row, decoder_row, label_row in zip(encoder_ids, decoder_ids, labels):
            source_length = (encoder_row != PAD_ID).sum()
            length = (label_row != PAD_ID).sum()
            assert encoder_row[source_length - 1] == END_ID
            assert label_row[length - 1] == END_ID
            assert END_ID not in label_row[: length - 1]
            # Teacher forcing: the labels are the decoder input shifted left.
            np.testing.assert_array_equal(label_row[: length - 1], decoder_row[1:length])


def test_truncates_to_max_sequence_length(tokenizers):
    pairs = [(" ".join(["chat"] * 30), " ".join(["cat"] * 30)), ("chat", "cat")]
    dataset = make_dataset(
        pairs, *tokenizers, batch_size=2, max_sequence_length=5, bucket_boundaries=[]
    )
    ((encoder_ids, decoder_ids, labels),) = batches(dataset)
    chat = SOURCE_VOCABULARY.index("chat")
    cat = TARGET_VOCABULARY.index("cat")
    assert encoder_ids.tolist() == [[chat] * 4 + [END_ID], [chat, END_ID, 0, 0, 0]]
    assert decoder_ids.tolist() == [[START_ID] + [cat] * 4, [START_ID, cat, 0, 0, 0]]
    assert labels.tolist() == [[cat] * 4 + [END_ID], [cat, END_ID, 0, 0, 0]]


def test_max_sequence_length_one_keeps_only_reserved_tokens(tokenizers):
    dataset = make_dataset(
        [("le chat", "the cat")], *tokenizers, batch_size=1, max_sequence_length=1
    )
    ((encoder_ids, decoder_ids, labels),) = batches(dataset)
    assert (encoder_ids.tolist(), decoder_ids.tolist(), labels.tolist()) == (
        [[END_ID]],
        [[START_ID]],
        [[END_ID]],
    )


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_pair_appears_once_per_epoch(tokenizers, shuffle):
    pairs = mixed_length_pairs(200)
    dataset = make_dataset(
        pairs, *tokenizers, batch_size=8, max_sequence_length=64, shuffle=shuffle, seed=3
    )
    expected = sorted(
        tuple(word_ids(source, SOURCE_VOCABULARY)[:63]) + (END_ID,) for source, _ in pairs
    )
    for _ in range(2):
        seen = [row for encoder_ids, _, _ in batches(dataset) for row in unpadded_rows(encoder_ids)]
        assert sorted(seen) == expected


def test_shuffle_is_seeded_and_reshuffles_each_epoch(tokenizers):
    pairs = mixed_length_pairs(100)

    def first_epochs(seed):
        dataset = make_dataset(
            pairs, *tokenizers, batch_size=8, max_sequence_length=64, shuffle=True, seed=seed
        )
        return [[unpadded_rows(batch[0]) for batch in batches(dataset)] for _ in range(2)]

    epochs = first_epochs(seed=5)
    assert epochs == first_epochs(seed=5)
    assert epochs[0] != epochs[1]
    assert epochs != first_epochs(seed=6)


def test_bucketing_reduces_padding(tokenizers):
    pairs = mixed_length_pairs(400)
    options = dict(batch_size=16, max_sequence_length=64, shuffle=True, seed=0)
    bucketed = padding_fraction(make_dataset(pairs, *tokenizers, **options))
    unbucketed = padding_fraction(make_dataset(pairs, *tokenizers, bucket_boundaries=[], **options))
    assert unbucketed > 0.4
    assert bucketed < 0.2
    coarse = padding_fraction(
        make_dataset(pairs, *tokenizers, bucket_boundaries=[8, 32], **options)
    )
    assert bucketed < coarse < unbucketed


def test_tokenizer_with_sequence_length_gives_the_same_batches(tokenizers):
    pairs = mixed_length_pairs(50)
    options = dict(batch_size=8, max_sequence_length=32)
    padded_tokenizers = (
        build_tokenizer(SOURCE_VOCABULARY, sequence_length=48),
        build_tokenizer(TARGET_VOCABULARY, sequence_length=48),
    )
    expected = batches(make_dataset(pairs, *tokenizers, **options))
    actual = batches(make_dataset(pairs, *padded_tokenizers, cache=False, **options))
    assert len(actual) == len(expected)
    for actual_batch, expected_batch in zip(actual, expected):
        for actual_array, expected_array in zip(actual_batch, expected_batch):
            np.testing.assert_array_equal(actual_array, expected_array)


def test_padding_fraction_counts_encoder_and_decoder_positions(tokenizers):
    pairs = [("chat", "cat"), ("chat chat chat", "cat cat cat")]
    dataset = make_dataset(
        pairs, *tokenizers, batch_size=2, max_sequence_length=8, bucket_boundaries=[]
    )
    # Encoder (2, 4) and decoder (2, 4), each with 2 padded positions.
    assert padding_fraction(dataset) == pytest.approx(4 / 16)
    assert padding_fraction(dataset.repeat(), max_batches=3) == pytest.approx(4 / 16)
    with pytest.raises(ValueError, match="yielded no token positions"):
        padding_fraction(dataset.take(0))


@pytest.mark.parametrize(
    "pairs, options, message",
    [
        ([], {}, "Received 0 pairs"),
        (
            [("chat", "cat")],
            {"batch_size": 0},
            "`batch_size` must be a positive integer. Received: batch_size=0",
        ),
        (
            [("chat", "cat")],
            {"max_sequence_length": 0},
            "`max_sequence_length` must be a positive integer. Received: max_sequence_length=0",
        ),
        ([("chat", "cat")], {"batch_size": 2.5}, "Received: batch_size=2.5"),
        ([("chat", "cat")], {"bucket_boundaries": [8, 8]}, "strictly increasing"),
        ([("chat", "cat")], {"bucket_boundaries": [0, 8]}, "strictly increasing"),
    ],
)
def test_rejects_bad_arguments(tokenizers, pairs, options, message):
    arguments = dict(batch_size=4, max_sequence_length=16) | options
    with pytest.raises(ValueError, match=message):
        make_dataset(pairs, *tokenizers, **arguments)


def test_token_batches_hold_at_most_batch_tokens_and_count_their_tokens():
    tokenizer = build_tokenizer(RESERVED_TOKENS + ["a", "b"])
    pairs = [(" ".join("a" * (1 + i % 13)), " ".join("b" * (1 + i % 7))) for i in range(200)]
    dataset = make_dataset(
        pairs, tokenizer, tokenizer, batch_tokens=48, max_sequence_length=16
    )
    examples = 0
    for inputs, labels in dataset:
        rows, length = labels.shape[0], max(
            inputs[ENCODER_INPUT].shape[1], inputs[DECODER_INPUT].shape[1]
        )
        assert rows * length <= 48
        examples += rows
    assert examples == len(pairs)
    counts = token_counts(dataset)
    assert counts["padding"] / counts["positions"] == pytest.approx(padding_fraction(dataset))
    assert counts["target_tokens"] == sum(len(target.split()) + 1 for _, target in pairs)
    with pytest.raises(ValueError, match=r"exactly one of `batch_size`.*batch_size=8, "):
        make_dataset(pairs, tokenizer, tokenizer, batch_size=8, batch_tokens=48,
                     max_sequence_length=16)
    with pytest.raises(ValueError, match=r"`batch_tokens` must hold at least one example"):
        make_dataset(pairs, tokenizer, tokenizer, batch_tokens=8, max_sequence_length=16)
