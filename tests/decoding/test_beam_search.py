import numpy as np
import pytest
from decoding_reference import (
    END,
    START,
    build_model,
    length_penalty_divisor,
    log_probs,
    mixed_length_source,
    pad_rows,
    uncached_beam_search,
)

from keras_transformer.decoding import beam_search, greedy_search

MAX_LENGTH = 8


def _with_end_bias(model, bias):
    """Raises the end token's logit so that hypotheses end at various steps."""
    model.output_layers[-1].bias.assign(np.where(np.arange(30) == END, bias, 0.0))
    return model


@pytest.fixture(scope="module")
def model():
    return _with_end_bias(build_model(tie_embeddings=False, normalize_first=True, seed=11), 2.0)


def _reference_with_mixed_endings(alpha):
    """A random model and its uncached beams for two sources, where some
    hypotheses end and stay among the beams while others grow to
    MAX_LENGTH, so both paths are tested. The end token's bias is searched
    by bisection (from 0) until the reference search, not the code under
    test, gives both: the model's random values, and so the bias needed,
    differ between backends."""
    model = build_model(tie_embeddings=False, seed=0)
    source = mixed_length_source(batch_size=2)
    low, high = -8.0, 8.0
    for _ in range(12):
        bias = (low + high) / 2
        _with_end_bias(model, bias)
        expected = [
            uncached_beam_search(model, source[row], end_token_id=END, max_length=MAX_LENGTH,
                                 beam_size=3, alpha=alpha)
            for row in range(2)
        ]
        ended = sum(END in hypothesis for row in expected for hypothesis, _ in row)
        if 0 < ended < 6:
            return model, source, expected
        low, high = (bias, high) if ended == 0 else (low, bias)
    pytest.fail("no end-token bias gives beams that both end and reach MAX_LENGTH")


@pytest.mark.parametrize("alpha", [0.6, 0.0])
def test_beam_search_equals_an_uncached_hypothesis_by_hypothesis_search(alpha):
    model, source, expected = _reference_with_mixed_endings(alpha)
    tokens, scores = beam_search(
        model, source, start_token_id=START, end_token_id=END, max_length=MAX_LENGTH,
        beam_size=3, length_penalty=alpha, return_all_beams=True,
    )
    assert tokens.dtype == "int32" and scores.dtype == "float32"
    assert tokens.shape == (2, 3, MAX_LENGTH) and scores.shape == (2, 3)
    for row in range(2):
        expected_tokens = pad_rows([hypothesis for hypothesis, _ in expected[row]], MAX_LENGTH)
        np.testing.assert_array_equal(tokens[row], expected_tokens)
        np.testing.assert_allclose(scores[row], [score for _, score in expected[row]], atol=1e-4)


def test_scores_are_model_log_probabilities_over_the_gnmt_length_penalty(model):
    source = mixed_length_source()
    tokens, scores = beam_search(
        model, source, start_token_id=START, end_token_id=END, max_length=MAX_LENGTH,
        return_all_beams=True,
    )
    tokens, scores = np.asarray(tokens), np.asarray(scores)
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "beams are sorted best first"
    for beam in range(tokens.shape[1]):
        hypotheses = tokens[:, beam]  # (B, T)
        prefix = np.concatenate([np.full((len(source), 1), START), hypotheses[:, :-1]], axis=1)
        token_log_probs = np.take_along_axis(
            log_probs(model, source, prefix), hypotheses[..., None], axis=-1
        )[..., 0]  # (B, T)
        for row, hypothesis in enumerate(hypotheses):
            length = list(hypothesis).index(END) + 1 if END in hypothesis else MAX_LENGTH
            assert np.all(hypothesis[length:] == 0)
            expected = token_log_probs[row, :length].sum() / length_penalty_divisor(length, 0.6)
            np.testing.assert_allclose(scores[row, beam], expected, atol=1e-4)


def test_beam_size_one_is_greedy_search(model):
    source = mixed_length_source()
    settings = {"start_token_id": START, "end_token_id": END, "max_length": MAX_LENGTH}
    tokens, scores = beam_search(model, source, beam_size=1, **settings)
    np.testing.assert_array_equal(tokens, greedy_search(model, source, **settings)[0])
    assert scores.shape == (4,)


def test_each_sentence_decodes_as_in_a_batch_of_mixed_lengths(model):
    source = mixed_length_source()
    settings = {"start_token_id": START, "end_token_id": END, "max_length": MAX_LENGTH}
    tokens, scores = beam_search(model, source, return_all_beams=True, **settings)
    for row in range(len(source)):
        alone_tokens, alone_scores = beam_search(
            model, source[row : row + 1], return_all_beams=True, **settings
        )
        length = alone_tokens.shape[2]
        np.testing.assert_array_equal(tokens[row, :, :length], alone_tokens[0])
        assert np.all(np.asarray(tokens)[row, :, length:] == 0)
        np.testing.assert_allclose(scores[row], alone_scores[0], atol=1e-5)


def test_a_finished_beam_keeps_its_score_and_place():
    model = _with_end_bias(build_model(tie_embeddings=False, seed=4), 100.0)
    tokens, scores = beam_search(
        model, mixed_length_source(), start_token_id=START, end_token_id=END, max_length=5,
        return_all_beams=True,
    )
    # [END] has probability ~1: it stays the best beam with score ~0 while the
    # other beams grow until they end too.
    np.testing.assert_array_equal(tokens[:, 0], pad_rows([[END]] * 4, tokens.shape[2]))
    np.testing.assert_allclose(scores[:, 0], 0.0, atol=1e-4)
    assert np.all(np.asarray(scores)[:, 1:] < -10)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"beam_size": 0}, "`beam_size` must be a positive integer. Received: beam_size=0"),
        ({"beam_size": 30}, r"`beam_size` must be below the target vocabulary size \(30"),
        ({"length_penalty": "0.6"}, "`length_penalty` must be a number"),
        ({"max_length": -1}, "Received: max_length=-1"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(model, settings, message):
    arguments = {"start_token_id": START, "end_token_id": END, "max_length": 5, **settings}
    with pytest.raises(ValueError, match=message):
        beam_search(model, mixed_length_source(), **arguments)
