import keras
import numpy as np
import pytest
from decoding_reference import (
    END,
    START,
    build_model,
    log_probs,
    mixed_length_source,
    pad_rows,
    uncached_greedy,
)

from keras_transformer.decoding import greedy_search
from keras_transformer.decoding.search_utils import argmax

CONFIGS = [
    {"tie_embeddings": True, "normalize_first": False, "position_encoding": "sinusoidal"},
    {"tie_embeddings": False, "normalize_first": True, "position_encoding": "learned"},
    {"tie_embeddings": True, "normalize_first": True, "position_encoding": "learned"},
    {"tie_embeddings": False, "normalize_first": False, "position_encoding": "sinusoidal"},
]
MAX_LENGTH = 10


def greedy_tokens(*args, **kwargs):
    """The tokens of `greedy_search`, as numpy."""
    return np.asarray(greedy_search(*args, **kwargs)[0])


def _lengths(tokens, end_token_id):
    """Tokens per row up to and including the first end token."""
    return [list(row).index(end_token_id) + 1 if end_token_id in row else len(row)
            for row in tokens]


def _model_with_mixed_lengths(config, source):
    """The first seeded model with an end token that makes the rows of its
    unconstrained greedy output end at different steps, and that token."""
    for seed in range(7, 30):
        model = build_model(**config, seed=seed)
        tokens = uncached_greedy(model, source, end_token_id=None, max_length=MAX_LENGTH)
        candidates = sorted(set(tokens.flat) - {START})
        end_token_id = max(candidates, key=lambda token: len(set(_lengths(tokens, token))))
        if len(set(_lengths(tokens, end_token_id))) > 1:
            return model, end_token_id
    raise AssertionError("no seed in 7..29 gives rows of different lengths")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_cached_greedy_equals_the_uncached_prefix_loop(config):
    source = mixed_length_source()
    model, end_token_id = _model_with_mixed_lengths(config, source)

    expected = uncached_greedy(model, source, end_token_id=end_token_id, max_length=MAX_LENGTH)
    tokens, scores = greedy_search(
        model, source, start_token_id=START, end_token_id=end_token_id, max_length=MAX_LENGTH
    )
    tokens = np.asarray(tokens)
    assert tokens.dtype == "int32"
    np.testing.assert_array_equal(tokens, expected)
    # Scores: the total log-probability of each row's tokens, from full passes.
    prefix = np.concatenate([np.full((len(source), 1), START), tokens[:, :-1]], axis=1)
    token_log_probs = np.take_along_axis(log_probs(model, source, prefix), tokens[..., None], -1)
    expected_scores = np.where(tokens != 0, token_log_probs[..., 0], 0.0).sum(axis=1)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-4)
    # Rows end at different steps; each keeps its end token, then holds 0.
    lengths = _lengths(tokens, end_token_id)
    assert len(set(lengths)) > 1 and tokens.shape[1] == max(lengths), lengths
    for row, length in zip(tokens, lengths):
        assert np.all(row[:length] != 0) and np.all(row[length:] == 0)


def test_a_model_that_always_predicts_end_stops_after_one_step():
    model = build_model(tie_embeddings=False)
    bias = model.output_layers[-1].bias
    bias.assign(np.where(np.arange(30) == END, 100.0, 0.0))
    tokens = greedy_tokens(
        model, mixed_length_source(), start_token_id=START, end_token_id=END, max_length=8
    )
    np.testing.assert_array_equal(tokens, np.full((4, 1), END))


def test_no_end_token_generates_max_length_tokens_and_never_padding():
    model = build_model(seed=2)
    tokens = greedy_tokens(
        model, mixed_length_source(), start_token_id=START, end_token_id=None, max_length=7
    )
    assert tokens.shape == (4, 7) and np.all(tokens != 0)


def test_each_sentence_decodes_as_in_a_batch_of_mixed_lengths():
    model = build_model(tie_embeddings=False, normalize_first=True, seed=7)
    source = mixed_length_source()
    settings = {"start_token_id": START, "end_token_id": END, "max_length": MAX_LENGTH}
    batch = greedy_tokens(model, source, **settings)
    alone = [greedy_tokens(model, row[None], **settings)[0] for row in source]
    np.testing.assert_array_equal(batch, pad_rows(alone, batch.shape[1]))
    # Padding the source longer changes nothing either.
    padded = np.pad(source, ((0, 0), (0, 3)))
    np.testing.assert_array_equal(greedy_tokens(model, padded, **settings), batch)


def test_greedy_search_works_after_a_keras_reload(tmp_path):
    model = build_model(tie_embeddings=False, position_encoding="learned", seed=5)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    settings = {"start_token_id": START, "end_token_id": END, "max_length": MAX_LENGTH}
    np.testing.assert_array_equal(
        greedy_tokens(reloaded, mixed_length_source(), **settings),
        greedy_tokens(model, mixed_length_source(), **settings),
    )


@pytest.mark.parametrize(
    "source, settings, message",
    [
        (np.ones((2, 3), "int32"), {"max_length": 0}, "`max_length` must be a positive integer"),
        (np.ones((2, 3), "int32"), {"max_length": 2.5}, "Received: max_length=2.5"),
        (np.ones(3, "int32"), {}, r"shape \(batch, source_length\); received shape \(3,\)"),
        (np.ones((1, 2, 3), "int32"), {}, r"rank 3"),
        (np.ones((2, 3), "float32"), {}, "integer token ids; received dtype float32"),
        (np.ones((2, 3), "int32"), {"start_token_id": 0}, r"in \[1, 30\).*start_token_id=0"),
        (np.ones((2, 3), "int32"), {"end_token_id": 30}, r"end_token_id=30"),
        (np.ones((2, 3), "int32"), {"max_length": 25}, "learned target positions for 24"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(source, settings, message):
    model = build_model(num_layers=1, position_encoding="learned")
    arguments = {"start_token_id": START, "end_token_id": END, "max_length": 5, **settings}
    with pytest.raises(ValueError, match=message):
        greedy_search(model, source, **arguments)


def test_argmax_takes_the_first_largest_logit():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 3, 50)).astype("float32")
    logits[0, 0, [7, 20, 41]] = 9.0  # ties: the first wins, as np.argmax
    logits[1, 2, :] = 0.0
    logits[1, 2, 3] = -0.0
    chosen = keras.ops.convert_to_numpy(argmax(logits))
    assert chosen.dtype == np.int32
    np.testing.assert_array_equal(chosen, np.argmax(logits, axis=-1))
    assert chosen[0, 0] == 7


def test_argmax_of_a_nan_row_is_a_valid_id():
    logits = np.full((2, 6), np.nan, "float32")
    logits[1] = [0.0, 1.0, 5.0, 2.0, 5.0, -1.0]
    chosen = keras.ops.convert_to_numpy(argmax(logits))
    assert 0 <= chosen[0] < 6
    assert chosen[1] == 2
