import gc
import weakref

import keras
import numpy as np
import pytest
from decoding_reference import START, build_model, mixed_length_source

from keras_transformer.decoding import CachedSeq2SeqDecoder, greedy_search
from keras_transformer.decoding import search_utils
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
    decoder = CachedSeq2SeqDecoder(model)
    source = mixed_length_source()
    rng = np.random.default_rng(1)
    target = np.concatenate(
        [np.full((len(source), 1), START), rng.integers(3, 30, (len(source), 5))], axis=1
    ).astype("int32")
    expected = np.asarray(model({ENCODER_INPUT: source, DECODER_INPUT: target}))

    cross_attention_caches, encoder_padding_mask = decoder.encode(source)
    caches = decoder.init_self_attention_caches(len(source), target.shape[1])
    for index in range(target.shape[1]):
        logits, caches = decoder.step(
            target[:, index], index, caches, cross_attention_caches, encoder_padding_mask
        )
        np.testing.assert_allclose(logits, expected[:, index], atol=1e-5, rtol=1e-5)
    assert logits.dtype == "float32"


def test_caches_have_keys_and_values_per_block_in_the_layer_layout():
    model = build_model(num_layers=2)
    decoder = CachedSeq2SeqDecoder(model)
    cross_attention_caches, encoder_padding_mask = decoder.encode(mixed_length_source(3, 5))
    self_attention_caches = decoder.init_self_attention_caches(3, 9)
    # Keys, then values, of each block: (B, H, S or L, Dh).
    assert [tuple(cache.shape) for cache in cross_attention_caches] == [(3, 2, 5, 8)] * 4
    assert [tuple(cache.shape) for cache in self_attention_caches] == [(3, 2, 9, 8)] * 4
    assert encoder_padding_mask.dtype == "bool"
    np.testing.assert_array_equal(encoder_padding_mask, mixed_length_source(3, 5) != 0)


def test_a_model_without_the_expected_layers_is_rejected():
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Embedding(10, 4, name="decoder_embedding")(inputs))
    with pytest.raises(ValueError, match="'encoder_embedding'.*no such layer"):
        CachedSeq2SeqDecoder(model)
    with pytest.raises(ValueError, match="received str"):
        CachedSeq2SeqDecoder("model")

    model = build_model()
    renamed = keras.Model(model.inputs, model.outputs)
    renamed.get_layer("decoder").name = "my_decoder"
    with pytest.raises(ValueError, match="`TransformerDecoder` layer named 'decoder'"):
        greedy_search(renamed, mixed_length_source(), start_token_id=1, end_token_id=2,
                      max_length=4)


def test_repeated_calls_reuse_one_trace_and_the_cache_dies_with_the_model():
    model = build_model(num_layers=1)
    settings = {"start_token_id": START, "end_token_id": 2, "max_length": 5}
    first = greedy_search(model, mixed_length_source(), **settings)
    second = greedy_search(model, mixed_length_source(), **settings)
    np.testing.assert_array_equal(first, second)
    search = search_utils.compiled_search(model, greedy_loop, **settings)
    assert search.experimental_get_tracing_count() == 1

    model_reference = weakref.ref(model)
    assert model in search_utils._CACHE
    del model, search
    gc.collect()
    assert model_reference() is None, "the compile cache must not keep the model alive"
