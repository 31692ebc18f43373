import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.layers import (
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerDecoderBlock,
)
from keras_transformer.layers.masks import get_keras_mask, set_keras_mask

B, T, S, D, L = 2, 5, 7, 8, 3
DECODER_LENGTHS, ENCODER_LENGTHS = [5, 2], [7, 3]


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


def padding(lengths, length):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]  # (B, S)


def masked(x, mask):
    """`x` as a tensor carrying the Keras mask `mask`."""
    x = keras.ops.convert_to_tensor(x)
    set_keras_mask(x, keras.ops.convert_to_tensor(mask))
    return x


def make_decoder(**kwargs):
    decoder = TransformerDecoder(L, num_heads=2, intermediate_dim=16, dropout=0.0, **kwargs)
    decoder.build((None, None, D), (None, None, D))
    return decoder


@pytest.fixture
def decoder_sequence(rng):
    return rng.normal(size=(B, T, D)).astype("float32")


@pytest.fixture
def encoder_sequence(rng):
    return rng.normal(size=(B, S, D)).astype("float32")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_is_the_blocks_in_order_plus_final_norm_for_pre_norm(decoder_sequence, encoder_sequence,
                                                              normalize_first):
    decoder = make_decoder(normalize_first=normalize_first)
    masks = {"decoder_padding_mask": padding(DECODER_LENGTHS, T),
             "encoder_padding_mask": padding(ENCODER_LENGTHS, S)}
    expected = decoder_sequence
    for block in decoder.blocks:
        expected = block(expected, encoder_sequence, **masks)
    if normalize_first:
        expected = decoder.final_norm(expected)
    outputs = decoder(decoder_sequence, encoder_sequence, **masks)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-6)
    assert [type(block) for block in decoder.blocks] == [TransformerDecoderBlock] * L


def test_is_causal(decoder_sequence, encoder_sequence, rng):
    decoder = make_decoder()
    before = to_numpy(decoder(decoder_sequence, encoder_sequence))
    changed = decoder_sequence.copy()
    changed[:, 3:] = rng.normal(size=(B, T - 3, D))
    after = to_numpy(decoder(changed, encoder_sequence))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-6)
    assert not np.allclose(after[:, 3:], before[:, 3:])


def test_reads_keras_masks_and_carries_the_decoder_mask(decoder_sequence, encoder_sequence, rng):
    decoder = make_decoder()
    decoder_mask, encoder_mask = padding(DECODER_LENGTHS, T), padding(ENCODER_LENGTHS, S)
    outputs = decoder(masked(decoder_sequence, decoder_mask),
                      masked(encoder_sequence, encoder_mask))
    explicit = decoder(decoder_sequence, encoder_sequence, decoder_padding_mask=decoder_mask,
                       encoder_padding_mask=encoder_mask)
    np.testing.assert_array_equal(to_numpy(outputs), to_numpy(explicit))
    output_mask = keras.ops.convert_to_numpy(get_keras_mask(outputs))
    np.testing.assert_array_equal(output_mask, decoder_mask)

    changed = np.where(encoder_mask[..., None], encoder_sequence,
                       rng.normal(size=encoder_sequence.shape)).astype("float32")
    after = decoder(masked(decoder_sequence, decoder_mask), masked(changed, encoder_mask))
    np.testing.assert_allclose(to_numpy(after), to_numpy(outputs), atol=1e-6)


def cached_loop(decoder, decoder_sequence, cross_attention_cache, encoder_mask, max_length):
    cache = decoder.init_self_attention_cache(B, max_length)
    shapes = [[tuple(part.shape) for part in pair] for pair in cache]
    assert shapes == [[(B, 2, max_length, D // 2)] * 2] * L
    steps = []
    for index in range(T):
        step, cache = decoder(
            decoder_sequence[:, index : index + 1],
            encoder_padding_mask=encoder_mask,
            self_attention_cache=cache,
            self_attention_cache_update_index=index,
            cross_attention_cache=cross_attention_cache,
        )
        steps.append(to_numpy(step))
    return np.concatenate(steps, axis=1), cache


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("max_length", [T, T + 3])
def test_cached_loop_equals_full_pass(decoder_sequence, encoder_sequence,
                                              normalize_first, max_length):
    decoder = make_decoder(normalize_first=normalize_first)
    encoder_mask = padding(ENCODER_LENGTHS, S)
    full = to_numpy(decoder(decoder_sequence, encoder_sequence, encoder_padding_mask=encoder_mask))
    cross_attention_cache = decoder.compute_cross_attention_cache(encoder_sequence)
    shapes = [[tuple(part.shape) for part in pair] for pair in cross_attention_cache]
    assert shapes == [[(B, 2, S, D // 2)] * 2] * L  # one (keys, values) pair per block
    steps, cache = cached_loop(decoder, decoder_sequence, cross_attention_cache, encoder_mask,
                               max_length)
    np.testing.assert_allclose(steps, full, atol=1e-5)
    for pair in cache:
        for part in pair:  # (B, H, max_length, Dh)
            np.testing.assert_array_equal(to_numpy(part)[:, :, T:], 0.0)
    first_block = decoder.blocks[0]
    first_inputs = decoder_sequence
    if normalize_first:
        first_inputs = first_block.self_attention_norm(decoder_sequence)
    first_block_keys = to_numpy(first_block.self_attention.key_dense(first_inputs))
    first_block_keys = first_block_keys.reshape(B, T, 2, 4).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(to_numpy(cache[0][0])[:, :, :T], first_block_keys, atol=1e-6)


@pytest.mark.tensorflow_only
def test_cached_loop_with_padding_in_an_xla_function(decoder_sequence, encoder_sequence):
    decoder = make_decoder(normalize_first=True)
    decoder_mask, encoder_mask = padding(DECODER_LENGTHS, T), padding(ENCODER_LENGTHS, S)
    full = to_numpy(decoder(decoder_sequence, encoder_sequence, decoder_padding_mask=decoder_mask,
                            encoder_padding_mask=encoder_mask))

    @tf.function(jit_compile=True)
    def step(token, token_mask, cache, cross_cache, index):
        return decoder(token, decoder_padding_mask=token_mask, encoder_padding_mask=encoder_mask,
                       self_attention_cache=cache, self_attention_cache_update_index=index,
                       cross_attention_cache=cross_cache)

    cross_attention_cache = decoder.compute_cross_attention_cache(encoder_sequence)
    cache = decoder.init_self_attention_cache(B, T)
    steps = []
    for index in range(T):
        output, cache = step(decoder_sequence[:, index : index + 1],
                             decoder_mask[:, index : index + 1], cache,
                             cross_attention_cache, tf.constant(index))
        steps.append(to_numpy(output))
    steps = np.concatenate(steps, axis=1)
    np.testing.assert_allclose(steps[decoder_mask], full[decoder_mask], atol=1e-5)


def test_cross_attention_cache_equals_the_no_cache_path(decoder_sequence, encoder_sequence):
    decoder = make_decoder()
    masks = {"decoder_padding_mask": padding(DECODER_LENGTHS, T),
             "encoder_padding_mask": padding(ENCODER_LENGTHS, S)}
    expected = decoder(decoder_sequence, encoder_sequence, **masks)
    cache = decoder.compute_cross_attention_cache(encoder_sequence)
    outputs = decoder(decoder_sequence, cross_attention_cache=cache, **masks)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-6)


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="num_layers=-1"):
        TransformerDecoder(-1, num_heads=2, intermediate_dim=16)
    with pytest.raises(ValueError, match="dropout=2"):
        TransformerDecoder(2, num_heads=2, intermediate_dim=16, dropout=2)


def test_config_round_trip():
    decoder = TransformerDecoder(
        2, num_heads=4, intermediate_dim=32, dropout=0.1, normalize_first=True,
        kernel_initializer="he_normal",
    )
    config = decoder.get_config()
    restored = TransformerDecoder.from_config(config)
    assert restored.get_config() == config
    assert len(restored.blocks) == 2 and restored.normalize_first


IDS = np.array([[3, 4, 5, 6, 0, 0], [0, 0, 0, 0, 0, 0], [7, 8, 9, 0, 0, 0]], "int32")


def tiny_model(normalize_first=False):
    source = keras.Input((None,), dtype="int32")
    target = keras.Input((None,), dtype="int32")
    encoded = TokenAndPositionEmbedding(20, 16, D)(source)
    x = TokenAndPositionEmbedding(20, 16, D)(target)
    x = TransformerDecoder(2, num_heads=2, intermediate_dim=16,
                           normalize_first=normalize_first)(x, encoded)
    logits = keras.layers.Dense(20, dtype="float32")(x)
    return keras.Model([source, target], logits, name="decoder")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_keras_file_round_trip(normalize_first, save_and_load):
    model = tiny_model(normalize_first)
    restored = save_and_load(model)
    inputs = [IDS, IDS[:, ::-1]]
    np.testing.assert_array_equal(to_numpy(restored(inputs)), to_numpy(model(inputs)))


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_forward_and_training_step(dtype_policy):
    model = tiny_model(normalize_first=True)
    decoder = model.get_layer(index=4)
    assert isinstance(decoder, TransformerDecoder)
    assert decoder.compute_dtype == dtype_policy.removeprefix("mixed_")
    assert np.isfinite(to_numpy(model([IDS, IDS]))).all()
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    history = model.fit([IDS, IDS], IDS, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(to_numpy(w)).all() for w in decoder.weights)
