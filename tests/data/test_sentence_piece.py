import pytest
import tensorflow as tf

from keras_transformer.data import generate_pairs
from keras_transformer.data.readers import DataError
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
    detokenize,
    detokenize_to_strings,
)
from keras_transformer.data.vocabularies import (
    load_vocabulary_file,
    make_tokenizer,
    save_vocabulary_file,
    train_vocabulary,
)

SENTENCES = [
    "Je suis étudiant.",
    "I am a student.",
    "L'homme n'aime pas les pommes.",
    "Qu'est-ce que c'est ? Il est à l'école, n'est-ce pas !",
    "Don't worry: we won't tell (really).",
    "It's 3.5 km away, and it costs $1,000, maybe 10%.",
    'She said "hello" to the T-shirt seller; he said "hi".',
    "a - b",
]
CORPUS = SENTENCES * 3 + [f"{fr} {en}" for fr, en in generate_pairs(num_pairs=200, seed=3)]


@pytest.fixture(scope="module")
def proto():
    return train_sentencepiece_model(CORPUS, vocabulary_size=300)


@pytest.fixture
def tokenizer(proto):
    # Built after the autouse `seed` fixture: reseeding TensorFlow frees the
    # graph resource of a tokenizer built before (see `sentence_piece`).
    return build_sentencepiece_tokenizer(proto)


def test_reserved_tokens_have_the_reserved_ids(tokenizer):
    vocabulary = tokenizer.get_vocabulary()
    assert vocabulary[:4] == RESERVED_TOKENS
    assert [tokenizer.token_to_id(token) for token in RESERVED_TOKENS] == [
        PAD_ID, UNK_ID, START_ID, END_ID
    ]
    assert 4 < tokenizer.vocabulary_size() <= 300


def test_round_trip_in_graph(tokenizer):
    token_ids = tf.function(tokenizer)(tf.constant(SENTENCES))  # (B, None) ragged
    assert token_ids.dtype == tf.int32
    for row in token_ids.to_list():
        assert row and min(row) >= 4  # no reserved id, no [UNK]
    assert detokenize(tokenizer, token_ids) == SENTENCES


def test_detokenize_stops_at_end_drops_pad_and_start_and_keeps_unk(tokenizer):
    ids = tokenizer(["Je suis étudiant."])[0]
    row = [START_ID, *ids, END_ID, *ids, PAD_ID]
    assert detokenize(tokenizer, [row, [START_ID, UNK_ID, END_ID]]) == [
        "Je suis étudiant.", "[UNK]"
    ]
    graph = tf.function(lambda token_ids: detokenize_to_strings(tokenizer, token_ids))
    dense = tf.ragged.constant([row]).to_tensor()
    assert graph(dense).numpy()[0].decode("utf-8") == "Je suis étudiant."


def test_unseen_characters_and_literal_reserved_tokens_are_plain_text(tokenizer):
    token_ids = tokenizer(["日本 [END]"])[0]
    assert UNK_ID in token_ids and END_ID not in token_ids


def test_training_is_deterministic(proto):
    assert train_sentencepiece_model(CORPUS, vocabulary_size=300) == proto


def test_vocabulary_size_is_an_upper_bound():
    proto = train_sentencepiece_model(["Je suis étudiant."] * 5, vocabulary_size=5000)
    assert build_sentencepiece_tokenizer(proto).vocabulary_size() < 100


def test_lowercase_is_stored_in_the_model():
    proto = train_sentencepiece_model(CORPUS, vocabulary_size=300, lowercase=True)
    tokenizer = build_sentencepiece_tokenizer(proto)
    assert detokenize(tokenizer, tokenizer(["Je suis ÉTUDIANT."])) == ["je suis étudiant."]
    assert not any(piece != piece.lower() for piece in tokenizer.get_vocabulary()[4:])


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one sentence"):
        train_sentencepiece_model([], 100)
    with pytest.raises(ValueError, match="above the 4 reserved tokens"):
        train_sentencepiece_model(["je"], 4)
    with pytest.raises(ValueError, match="could not learn a vocabulary of 8 tokens"):
        train_sentencepiece_model(["abcdefghijklmnop"], 8)
    with pytest.raises(ValueError, match="must be a serialized SentencePiece model"):
        build_sentencepiece_tokenizer("source_spm.model")


def test_save_and_load(tmp_path, proto):
    path = tmp_path / "source_spm.model"
    save_sentencepiece_model(proto, path)
    assert load_sentencepiece_model(path) == proto
    assert not [name for name in tmp_path.iterdir() if name.name.startswith(".")]


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.model: no such SentencePiece model file"):
        load_sentencepiece_model(tmp_path / "missing.model")
    corrupt = tmp_path / "corrupt.model"
    corrupt.write_bytes(b"not a model")
    with pytest.raises(DataError, match=r"corrupt\.model is not a SentencePiece model"):
        load_sentencepiece_model(corrupt)


def test_vocabularies_dispatch_on_the_tokenizer_name(tmp_path):
    for name, suffix in (("wordpiece", ".txt"), ("sentencepiece", ".model")):
        vocabulary = train_vocabulary(name, CORPUS, 300)
        path = tmp_path / f"vocabulary{suffix}"
        save_vocabulary_file(name, vocabulary, path)
        tokenizer = make_tokenizer(name, load_vocabulary_file(name, path))
        assert tokenizer.get_vocabulary()[:4] == RESERVED_TOKENS
        assert detokenize(tokenizer, tokenizer(["Je suis étudiant."])) == ["Je suis étudiant."]
    with pytest.raises(ValueError, match=r"`tokenizer` must be one of .*Received: tokenizer='bpe'"):
        train_vocabulary("bpe", CORPUS, 300)
    with pytest.raises(ValueError, match=r"sentencepiece vocabulary must be a serialized"):
        make_tokenizer("sentencepiece", RESERVED_TOKENS)
