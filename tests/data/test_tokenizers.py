import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.data.readers import DataError, load_corpus
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
    split_words,
    train_wordpiece_vocabulary,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

ROUND_TRIP_SENTENCES = [
    "Je suis étudiant.",
    "I am a student.",
    "L'homme n'aime pas les pommes.",
    "Do you like dogs?",
    "Qu'est-ce que c'est? Il est à l'école, n'est-ce pas!",
    "Don't worry: we won't tell (really).",
    "It's 3.5 km away, and it costs $1,000, maybe 10%.",
    'She said "hello" to the T-shirt seller; he said "hi".',
    "Wait... what's #1?",
]
FRENCH_ROUND_TRIP_SENTENCES = [
    "Va !",
    "Est-ce qu'elle ferme des sacs jaunes ?",
    "Il a dit : « non » ; puis il est parti.",
]
CORPUS = ROUND_TRIP_SENTENCES + FRENCH_ROUND_TRIP_SENTENCES + [
    "Tu es étudiante.",
    "Nous aimons les chiens et les chats.",
    "Ils mangent des pommes à l'école.",
    "We like cats and dogs.",
    "You are a teacher.",
] * 3


@pytest.fixture(scope="module")
def vocabulary():
    return train_wordpiece_vocabulary(CORPUS, vocabulary_size=400)


@pytest.fixture(scope="module")
def tokenizer(vocabulary):
    return build_tokenizer(vocabulary)


def tokenize(tokenizer, sentences):
    """Tokenizes in the TensorFlow graph, as the input pipeline does."""
    return tf.function(tokenizer)(tf.constant(sentences))


def test_reserved_token_ids():
    assert RESERVED_TOKENS == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert (PAD_ID, UNK_ID, START_ID, END_ID) == (0, 1, 2, 3)


def test_vocabulary_starts_with_reserved_tokens_and_keeps_case_and_accents(vocabulary):
    assert vocabulary[:4] == RESERVED_TOKENS
    assert len(vocabulary) <= 400
    assert len(set(vocabulary)) == len(vocabulary)
    assert "é" in vocabulary and "L" in vocabulary
    assert "." in vocabulary and "'" in vocabulary


def test_vocabulary_size_is_an_upper_bound():
    vocabulary = train_wordpiece_vocabulary(CORPUS, vocabulary_size=60)
    assert vocabulary[:4] == RESERVED_TOKENS
    assert len(vocabulary) <= 60


def test_train_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Received 0 sentences"):
        train_wordpiece_vocabulary([], 100)
    with pytest.raises(ValueError, match="4 reserved tokens. Received: vocabulary_size=4"):
        train_wordpiece_vocabulary(["a"], 4)


def test_round_trip(tokenizer):
    token_ids = tokenize(tokenizer, ROUND_TRIP_SENTENCES)
    assert UNK_ID not in token_ids.flat_values.numpy()
    assert detokenize(tokenizer, token_ids) == ROUND_TRIP_SENTENCES


def test_french_round_trip_keeps_space_before_high_punctuation(tokenizer):
    token_ids = tokenize(tokenizer, FRENCH_ROUND_TRIP_SENTENCES + ["Je suis étudiant."])
    french = detokenize(tokenizer, token_ids, language="fr")
    assert french == FRENCH_ROUND_TRIP_SENTENCES + ["Je suis étudiant."]
    english = detokenize(tokenizer, token_ids)
    assert english[:2] == ["Va!", "Est-ce qu'elle ferme des sacs jaunes?"]


def test_punctuation_is_split_off(tokenizer, vocabulary):
    token_ids = tokenize(tokenizer, ["L'homme."]).to_list()[0]
    tokens = [vocabulary[i] for i in token_ids]
    assert tokens[0] == "L" and tokens[1] == "'" and tokens[-1] == "."


def test_unknown_word_maps_to_unk(tokenizer, vocabulary):
    token_ids = tokenize(tokenizer, ["Je suis Ωmega."]).to_list()[0]
    assert token_ids[-2:] == [UNK_ID, vocabulary.index(".")]
    assert UNK_ID not in token_ids[:-2]
    assert detokenize(tokenizer, [token_ids]) == ["Je suis [UNK]."]


def test_reserved_tokens_in_text_are_plain_text(tokenizer):
    token_ids = tokenize(tokenizer, ["[END] [PAD]"]).flat_values.numpy()
    assert not set(token_ids) & {PAD_ID, START_ID, END_ID}


def test_lowercase_tokenizer():
    vocabulary = train_wordpiece_vocabulary(CORPUS, vocabulary_size=400, lowercase=True)
    assert "L" not in vocabulary
    tokenizer = build_tokenizer(vocabulary, lowercase=True)
    token_ids = tokenize(tokenizer, ["L'homme n'aime pas les pommes."])
    assert detokenize(tokenizer, token_ids) == ["l'homme n'aime pas les pommes."]


def test_build_tokenizer_pads_and_truncates_to_sequence_length(vocabulary, tokenizer):
    sentences = ["I am a student.", ROUND_TRIP_SENTENCES[-3]]
    ragged = tokenize(tokenizer, sentences).to_list()
    length = len(ragged[0]) + 2
    assert len(ragged[1]) > length
    dense = tokenize(build_tokenizer(vocabulary, sequence_length=length), sentences)
    assert dense.shape == (2, length) and dense.dtype == tf.int32
    assert dense.numpy().tolist() == [ragged[0] + [PAD_ID, PAD_ID], ragged[1][:length]]


def test_build_tokenizer_requires_reserved_tokens():
    with pytest.raises(ValueError, match="must start with the reserved tokens"):
        build_tokenizer(["[UNK]", "[PAD]", "[START]", "[END]", "a"])


def test_detokenize_stops_at_end_and_drops_pad_and_start(tokenizer):
    ids = tokenize(tokenizer, ["I am a student.", "Do you like dogs?"]).to_list()
    rows = [
        [START_ID] + ids[0] + [END_ID] + ids[1] + [PAD_ID],
        [PAD_ID, START_ID] + ids[1] + [END_ID, END_ID],
        [START_ID, END_ID] + ids[0],
    ]
    assert detokenize(tokenizer, rows) == ["I am a student.", "Do you like dogs?", ""]
    dense = tf.ragged.constant(rows).to_tensor()
    assert detokenize(tokenizer, dense) == detokenize(tokenizer, dense.numpy())
    assert detokenize(tokenizer, np.asarray(dense)) == ["I am a student.", "Do you like dogs?", ""]


def test_detokenize_to_strings_in_graph_matches_eager(tokenizer):
    token_ids = tokenize(tokenizer, ROUND_TRIP_SENTENCES)
    in_graph = tf.function(lambda ids: detokenize_to_strings(tokenizer, ids))
    graph_text = in_graph(token_ids.to_tensor())
    assert graph_text.dtype == tf.string and graph_text.shape == (len(ROUND_TRIP_SENTENCES),)
    assert graph_text.numpy().tolist() == [s.encode() for s in ROUND_TRIP_SENTENCES]
    eager_text = detokenize_to_strings(tokenizer, token_ids)
    assert eager_text.numpy().tolist() == graph_text.numpy().tolist()


def test_detokenize_to_strings_rejects_unbatched_ids(tokenizer):
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        detokenize_to_strings(tokenizer, tf.constant([4, 5, 3]))


def test_save_and_load_vocabulary(tmp_path, vocabulary):
    path = tmp_path / "vocabulary.txt"
    path.write_text("stale\n")
    vocabulary = vocabulary + ["Va\u00a0", " ##x "]  # kept verbatim, spaces included
    save_vocabulary(vocabulary, path)
    assert load_vocabulary(path) == vocabulary
    assert path.read_text(encoding="utf-8").splitlines() == vocabulary
    assert os.listdir(tmp_path) == ["vocabulary.txt"]


def test_save_vocabulary_rejects_bad_tokens(tmp_path):
    with pytest.raises(ValueError, match="must start with the reserved tokens"):
        save_vocabulary(["a"], tmp_path / "vocabulary.txt")
    with pytest.raises(ValueError, match="on one line. Received: 'a\\\\nb'"):
        save_vocabulary(RESERVED_TOKENS + ["a\nb"], tmp_path / "vocabulary.txt")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such vocabulary file"),
        ("", "the vocabulary file is empty"),
        ("[PAD]\n[START]\n[UNK]\n[END]\na\n", "must start with the reserved tokens"),
        ("[PAD]\n[UNK]\n", "must start with the reserved tokens"),
    ],
)
def test_load_vocabulary_errors(tmp_path, content, message):
    path = tmp_path / "vocabulary.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as error:
        load_vocabulary(path)
    assert "vocabulary.txt" in str(error.value)


@pytest.mark.parametrize("side, language", [(0, "fr"), (1, "en")])
def test_round_trips_shared_multi30k_sentences(side, language):
    if not (SHARED_DATA / "multi30k" / "val.en").exists():
        pytest.skip("../shared/data is absent")
    texts = [pair[side] for pair in load_corpus(SHARED_DATA / "multi30k" / "val")[:300]]
    tokenizer = build_tokenizer(train_wordpiece_vocabulary(texts, vocabulary_size=1000))
    restored = detokenize(tokenizer, tokenize(tokenizer, texts), language=language)
    # The rest are quirks of the data, such as "&amp;" or "they 're".
    assert sum(a == b for a, b in zip(texts, restored)) / len(texts) > 0.98


def test_rare_words_get_whole_word_tokens_above_min_count():
    texts = ["Je suis étudiant."] * 3 + [f"Il a {n} chats." for n in range(40)]
    assert "étudiant" in train_wordpiece_vocabulary(texts, vocabulary_size=200)
    assert "étudiant" not in train_wordpiece_vocabulary(texts, vocabulary_size=200, min_count=4)


def test_min_count_below_one_is_rejected():
    with pytest.raises(ValueError, match="min_count"):
        train_wordpiece_vocabulary(["a b"], vocabulary_size=10, min_count=0)


SPLIT_CASES = [
    "L'homme « Élégant » a dit : \"Bonjour !\" (à 10:30, 3.5 €).",
    "T-shirt, don’t — est-ce…?   tabs\tand\nnew lines",
    "zero\u200bwidth, control\x07char, 東京タワーは高い。Ünïcödé STRASSE Straße",
    "$#@^`~|\\ [brackets]{braces}<angles> 😀 emoji",
    "",
]


@pytest.mark.parametrize("lowercase", [False, True])
def test_split_words_is_the_wordpiece_tokenizers_split(lowercase):
    """With every word of `split_words` in the vocabulary, the keras_hub tokenizer
    returns exactly those words: its own split is the same."""
    words = split_words(tf.constant(SPLIT_CASES), lowercase).to_list()
    distinct = sorted({word.decode("utf-8") for row in words for word in row})
    vocabulary = RESERVED_TOKENS + [word for word in distinct if word not in RESERVED_TOKENS]
    tokenizer = build_tokenizer(vocabulary, lowercase=lowercase)
    for text, expected in zip(SPLIT_CASES, words):
        ids = tokenizer(tf.constant([text]))[0]
        assert [vocabulary[i] for i in ids] == [word.decode("utf-8") for word in expected]
    first = "l" if lowercase else "L"
    assert [word.decode("utf-8") for word in words[0][:4]] == [first, "'", "homme", "«"]
