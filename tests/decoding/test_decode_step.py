"""`Seq2SeqTransformer.decode_step` and the compile cache of the searches."""

import gc
import weakref

import keras
import numpy as np
import pytest
from decoding_reference import START, build_model, mixed_length_source

from keras_transformer.decoding import greedy_search, search_utils
from keras_transformer.decoding.greedy import greedy_loop
from keras_transformer.models import DECODER_INPUT, ENCODER_INPUT

CONFIGS = [
    {"tie_embeddings": True, "normalize_first": False, "position_encoding": "sinusoidal"},
    {"tie_embeddings": False, "normalize_first": True, "position_encoding": "learned"},
    {"tie_embeddings": True, "normalize_first": True, "position_encoding": "learned"},
    {"tie_embeddings": False, "normalize_first": False, "position_encoding": "sinusoidal"},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_step_by_step_logits_equal_one_full_pass(config):
    model = build_model(**config, seed=3)
    source = mixed_length_source()
    rng = np.random.default_rng(1)
    target = np.concatenate(
        [np.full((len(source), 1), START), rng.integers(3, 30, (len(source), 5))], axis=1
    ).astype("int32")
    expected = np.asarray(model({ENCODER_INPUT: source, DECODER_INPUT: target}))

    encoder_outputs, encoder_padding_mask = model.encode(source)
    cross_attention_cache = model.compute_cross_attention_cache(encoder_outputs)
    cache = model.init_self_attention_cache(len(source), target.shape[1])
    for index in range(target.shape[1]):
        logits, cache = model.decode_step(
            target[:, index : index + 1], index, cache, cross_attention_cache,
            encoder_padding_mask,
        )  # (B, 1, V)
        np.testing.assert_allclose(logits[:, 0], expected[:, index], atol=1e-5, rtol=1e-5)
    assert logits.dtype == "float32"


def test_caches_have_keys_and_values_per_block_in_the_layer_layout():
    model = build_model(num_layers=2)
    encoder_outputs, encoder_padding_mask = model.encode(mixed_length_source(3, 5))
    cross_attention_cache = model.compute_cross_attention_cache(encoder_outputs)
    self_attention_cache = model.init_self_attention_cache(3, 9)
    # One (keys, values) pair per block: (B, H, S or M, Dh).
    shapes = lambda cache: [[tuple(part.shape) for part in pair] for pair in cache]  # noqa: E731
    assert shapes(cross_attention_cache) == [[(3, 2, 5, 8)] * 2] * 2
    assert shapes(self_attention_cache) == [[(3, 2, 9, 8)] * 2] * 2
    assert encoder_padding_mask.dtype == "bool"
    np.testing.assert_array_equal(encoder_padding_mask, mixed_length_source(3, 5) != 0)


def test_several_hypotheses_per_row_need_a_self_attention_mask():
    model = build_model(num_layers=1)
    encoder_outputs, encoder_padding_mask = model.encode(mixed_length_source(2, 5))
    cross_attention_cache = model.compute_cross_attention_cache(encoder_outputs)
    cache = model.init_self_attention_cache(2, 8)
    with pytest.raises(ValueError, match="3 hypotheses per row needs a `self_attention_mask`"):
        model.decode_step(np.ones((2, 3), "int32"), 0, cache, cross_attention_cache,
                          encoder_padding_mask)
    with pytest.raises(ValueError, match=r"received shape \(2,\)\. For one token per row"):
        model.decode_step(np.ones((2,), "int32"), 0, cache, cross_attention_cache,
                          encoder_padding_mask)


def test_a_model_this_library_did_not_build_is_refused_with_how_to_wrap_it():
    model = build_model()
    plain = keras.Model(model.inputs, model.outputs)  # the same layers, composed by hand
    settings = {"start_token_id": START, "end_token_id": 2, "max_length": 4}
    with pytest.raises(ValueError, match=r"Decoding needs a `keras_transformer.models."
                       r"Seq2SeqTransformer`. Received Functional .*Seq2SeqTransformer\("):
        greedy_search(plain, mixed_length_source(), **settings)
    with pytest.raises(ValueError, match="Received the path 'model'; load it first"):
        greedy_search("model", mixed_length_source(), **settings)


def test_repeated_calls_reuse_one_trace_and_the_cache_dies_with_the_model():
    model = build_model(num_layers=1)
    settings = {"start_token_id": START, "end_token_id": 2, "max_length": 5}
    first, _ = greedy_search(model, mixed_length_source(), **settings)
    second, _ = greedy_search(model, mixed_length_source(), **settings)
    np.testing.assert_array_equal(first, second)
    search = search_utils.compiled_search(model, greedy_loop, **settings)
    assert search.experimental_get_tracing_count() == 1

    model_reference = weakref.ref(model)
    assert model in search_utils._COMPILED
    del model, search
    gc.collect()
    assert model_reference() is None, "the compile cache must not keep the model alive"
