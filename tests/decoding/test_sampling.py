import numpy as np
import pytest
from decoding_reference import END, START, build_model, log_probs, mixed_length_source

from keras_transformer.decoding import greedy_search, sample
from keras_transformer.decoding.sampling import filter_logits

SETTINGS = {"start_token_id": START, "end_token_id": END, "max_length": 8}


@pytest.fixture(scope="module")
def model():
    return build_model(tie_embeddings=False, normalize_first=True, seed=11)


def test_top_k_one_is_greedy_search_with_its_scores(model):
    source = mixed_length_source()
    tokens, scores = sample(model, source, top_k=1, seed=3, **SETTINGS)
    greedy_tokens, greedy_scores = greedy_search(model, source, **SETTINGS)
    np.testing.assert_array_equal(tokens, greedy_tokens)
    np.testing.assert_allclose(scores, greedy_scores, rtol=1e-6)


def test_the_same_seed_gives_the_same_tokens(model):
    source = mixed_length_source()
    first, _ = sample(model, source, temperature=2.0, seed=5, **SETTINGS)
    again, _ = sample(model, source, temperature=2.0, seed=5, **SETTINGS)
    np.testing.assert_array_equal(again, first)
    others = [sample(model, source, temperature=2.0, seed=seed, **SETTINGS)[0] for seed in (6, 7)]
    assert any(
        other.shape != first.shape or np.any(np.asarray(other) != first) for other in others
    )


def test_samples_come_from_the_top_k_tokens_of_the_model(model):
    source = mixed_length_source()
    tokens = np.asarray(sample(model, source, top_k=3, temperature=3.0, seed=1, **SETTINGS)[0])
    prefix = np.concatenate([np.full((len(source), 1), START), tokens[:, :-1]], axis=1)
    step_log_probs = log_probs(model, source, prefix)  # (B, T, V)
    step_log_probs[..., 0] = -np.inf  # padding is never generated
    top_3 = np.argsort(-step_log_probs, axis=-1)[..., :3]
    for row, row_tokens in enumerate(tokens):
        length = list(row_tokens).index(END) + 1 if END in row_tokens else len(row_tokens)
        for step in range(length):
            assert row_tokens[step] in top_3[row, step]
        assert np.all(row_tokens[length:] == 0)
    assert len(set(tokens[:, 0])) > 1 or len(set(tokens[0])) > 2, "the samples vary"


def test_filter_logits_keeps_the_top_k_and_the_top_p_nucleus():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], "float32"))
    kept = lambda filtered: np.asarray(filtered)[0] > -1e8  # noqa: E731
    np.testing.assert_array_equal(kept(filter_logits(logits, 1.0, 2, None)), [1, 1, 0, 0])
    np.testing.assert_array_equal(kept(filter_logits(logits, 1.0, None, 0.7)), [1, 1, 0, 0])
    np.testing.assert_array_equal(kept(filter_logits(logits, 1.0, None, 0.85)), [1, 1, 1, 0])
    np.testing.assert_array_equal(kept(filter_logits(logits, 1.0, None, 0.1)), [1, 0, 0, 0])
    np.testing.assert_allclose(filter_logits(logits, 2.0, None, None), logits / 2.0)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"temperature": 0.0}, "`temperature` must be a number > 0"),
        ({"top_k": 0}, "`top_k` must be a positive integer"),
        ({"top_p": 0.0}, r"`top_p` must be a probability in \(0, 1\]"),
        ({"top_p": 1.5}, "Received: top_p=1.5"),
        ({"seed": "1"}, "`seed` must be an int or None"),
        ({"max_length": 0}, "`max_length` must be a positive integer"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(model, settings, message):
    with pytest.raises(ValueError, match=message):
        sample(model, mixed_length_source(), **{**SETTINGS, **settings})
