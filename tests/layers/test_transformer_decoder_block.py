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

B, T, S, D, DE = 2, 5, 7, 8, 12
DECODER_LENGTHS, ENCODER_LENGTHS = [5, 3], [7, 4]


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


def padding(lengths, length):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]  # (B, S)


def masked(x, mask):
    """`x` as a tensor carrying the Keras mask `mask`."""
    x = keras.ops.convert_to_tensor(x)
    set_keras_mask(x, keras.ops.convert_to_tensor(mask))
    return x


def make_block(**kwargs):
    block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16, dropout=0.0, **kwargs)
    block.build((None, None, D), (None, None, DE))
    return block


@pytest.fixture
def decoder_sequence(rng):
    return rng.normal(size=(B, T, D)).astype("float32")


@pytest.fixture
def encoder_sequence(rng):
    return rng.normal(size=(B, S, DE)).astype("float32")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_wires_residuals_and_norms_as_in_the_paper(decoder_sequence, encoder_sequence,
                                                   normalize_first):
    block = make_block(normalize_first=normalize_first, bias_initializer="random_normal")
    decoder_mask, encoder_mask = padding(DECODER_LENGTHS, T), padding(ENCODER_LENGTHS, S)
    outputs = to_numpy(block(decoder_sequence, encoder_sequence, decoder_padding_mask=decoder_mask,
                             encoder_padding_mask=encoder_mask))

    def self_attention(y):
        return block.self_attention(y, y, value_mask=decoder_mask, use_causal_mask=True)

    def cross_attention(y):
        return block.cross_attention(y, encoder_sequence, value_mask=encoder_mask)

    x = keras.ops.convert_to_tensor(decoder_sequence)
    if normalize_first:  # x + Sublayer(LayerNorm(x))
        x = x + self_attention(block.self_attention_norm(x))
        x = x + cross_attention(block.cross_attention_norm(x))
        expected = x + block.feed_forward(block.feed_forward_norm(x))
    else:  # LayerNorm(x + Sublayer(x))
        x = block.self_attention_norm(x + self_attention(x))
        x = block.cross_attention_norm(x + cross_attention(x))
        expected = block.feed_forward_norm(x + block.feed_forward(x))
    np.testing.assert_allclose(outputs, to_numpy(expected), atol=1e-5)


def test_is_causal(decoder_sequence, encoder_sequence, rng):
    block = make_block()
    before = to_numpy(block(decoder_sequence, encoder_sequence))
    for position in range(1, T):
        changed = decoder_sequence.copy()
        changed[:, position:] = rng.normal(size=(B, T - position, D))
        after = to_numpy(block(changed, encoder_sequence))
        np.testing.assert_allclose(after[:, :position], before[:, :position], atol=1e-6)
        assert not np.allclose(after[:, position], before[:, position])


@pytest.mark.parametrize("normalize_first", [False, True])
def test_masked_encoder_outputs_are_not_attended(decoder_sequence, encoder_sequence, rng,
                                                 normalize_first):
    block = make_block(normalize_first=normalize_first)
    encoder_mask = padding(ENCODER_LENGTHS, S)
    changed = np.where(encoder_mask[..., None], encoder_sequence,
                       rng.normal(size=encoder_sequence.shape)).astype("float32")
    before = to_numpy(block(decoder_sequence, encoder_sequence, encoder_padding_mask=encoder_mask))
    explicit = to_numpy(block(decoder_sequence, changed, encoder_padding_mask=encoder_mask))
    keras_mask = to_numpy(block(decoder_sequence, masked(changed, encoder_mask)))
    np.testing.assert_allclose(explicit, before, atol=1e-6)
    np.testing.assert_allclose(keras_mask, before, atol=1e-6)
    assert not np.allclose(to_numpy(block(decoder_sequence, changed))[1], before[1], atol=1e-3)


def test_self_attention_mask_narrows_the_causal_mask(decoder_sequence, encoder_sequence):
    block = make_block()
    everything = np.ones((B, T, T), bool)
    np.testing.assert_allclose(
        to_numpy(block(decoder_sequence, encoder_sequence, self_attention_mask=everything)),
        to_numpy(block(decoder_sequence, encoder_sequence)), atol=1e-6,
    )
    # Each query sees only itself: every position decodes as a sequence of one.
    only_itself = np.broadcast_to(np.eye(T, dtype=bool), (B, T, T))
    outputs = to_numpy(block(decoder_sequence, encoder_sequence, self_attention_mask=only_itself))
    for position in range(T):
        alone = block(decoder_sequence[:, position : position + 1], encoder_sequence)
        np.testing.assert_allclose(outputs[:, position], to_numpy(alone)[:, 0], atol=1e-5)


def test_self_attention_mask_over_the_cache(decoder_sequence, encoder_sequence):
    """With a cache the mask spans the cache: hiding a cached position
    equals decoding without that position."""
    block = make_block()
    cross_attention_cache = block.compute_cross_attention_cache(encoder_sequence)
    cache = block.init_self_attention_cache(B, T)
    for index in range(T - 1):
        _, cache = block(decoder_sequence[:, index : index + 1], self_attention_cache=cache,
                         self_attention_cache_update_index=index,
                         cross_attention_cache=cross_attention_cache)
    hide_first = np.ones((B, 1, T), bool)
    hide_first[:, :, 0] = False
    last, _ = block(decoder_sequence[:, T - 1 :], self_attention_cache=cache,
                    self_attention_cache_update_index=T - 1,
                    cross_attention_cache=cross_attention_cache, self_attention_mask=hide_first)
    expected = block(decoder_sequence[:, 1:], encoder_sequence)[:, -1]
    np.testing.assert_allclose(to_numpy(last)[:, 0], to_numpy(expected), atol=1e-5)


def test_rejects_a_self_attention_mask_of_the_wrong_shape(decoder_sequence, encoder_sequence):
    block = make_block()
    with pytest.raises(ValueError, match=r"`attention_mask` broadcastable to .*\(2, 5, 5\)"):
        block(decoder_sequence, encoder_sequence, self_attention_mask=np.ones((B, T, T + 1), bool))
    # With a cache the mask spans the cache's L positions.
    with pytest.raises(ValueError, match=r"`attention_mask` broadcastable to .*\(2, 1, 5\)"):
        block(decoder_sequence[:, :1], self_attention_cache=block.init_self_attention_cache(B, T),
              self_attention_cache_update_index=0,
              cross_attention_cache=block.compute_cross_attention_cache(encoder_sequence),
              self_attention_mask=np.ones((B, 1, T + 1), bool))


def test_reads_keras_masks_when_no_padding_masks_are_passed(decoder_sequence, encoder_sequence):
    block = make_block()
    decoder_mask, encoder_mask = padding(DECODER_LENGTHS, T), padding(ENCODER_LENGTHS, S)
    from_keras_masks = block(masked(decoder_sequence, decoder_mask),
                             masked(encoder_sequence, encoder_mask))
    explicit = block(decoder_sequence, encoder_sequence, decoder_padding_mask=decoder_mask,
                     encoder_padding_mask=encoder_mask)
    np.testing.assert_array_equal(to_numpy(from_keras_masks), to_numpy(explicit))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(get_keras_mask(from_keras_masks)), decoder_mask
    )


# --- key/value caches --------------------------------------------------------


def cached_loop(block, decoder_sequence, encoder_sequence=None, encoder_mask=None,
                cross_attention_cache=None, max_length=T, decoder_mask=None):
    cache = block.init_self_attention_cache(B, max_length)
    assert [tuple(part.shape) for part in cache] == [(B, 2, max_length, D // 2)] * 2
    steps = []
    for index in range(T):
        step_mask = None if decoder_mask is None else decoder_mask[:, index : index + 1]
        step, cache = block(
            decoder_sequence[:, index : index + 1],
            encoder_sequence,
            decoder_padding_mask=step_mask,
            encoder_padding_mask=encoder_mask,
            self_attention_cache=cache,
            self_attention_cache_update_index=index,
            cross_attention_cache=cross_attention_cache,
        )
        steps.append(to_numpy(step))
    return np.concatenate(steps, axis=1), cache


@pytest.mark.parametrize("normalize_first", [False, True])
def test_cached_loop_with_cross_attention_cache_equals_full_pass(
    decoder_sequence, encoder_sequence, normalize_first
):
    block = make_block(normalize_first=normalize_first)
    encoder_mask = padding(ENCODER_LENGTHS, S)
    full = to_numpy(block(decoder_sequence, encoder_sequence, encoder_padding_mask=encoder_mask))
    cross_attention_cache = block.compute_cross_attention_cache(encoder_sequence)
    assert [tuple(part.shape) for part in cross_attention_cache] == [(B, 2, S, D // 2)] * 2
    steps, _ = cached_loop(block, decoder_sequence, encoder_mask=encoder_mask,
                           cross_attention_cache=cross_attention_cache, max_length=T + 2)
    np.testing.assert_allclose(steps, full, atol=1e-5)


def test_cached_loop_with_encoder_sequence_and_padding_equals_full_pass(decoder_sequence,
                                                                        encoder_sequence):
    block = make_block()
    decoder_mask, encoder_mask = padding(DECODER_LENGTHS, T), padding(ENCODER_LENGTHS, S)
    full = to_numpy(block(masked(decoder_sequence, decoder_mask),
                          masked(encoder_sequence, encoder_mask)))
    steps, _ = cached_loop(block, decoder_sequence, masked(encoder_sequence, encoder_mask),
                           decoder_mask=decoder_mask)
    np.testing.assert_allclose(steps[decoder_mask], full[decoder_mask], atol=1e-5)


@pytest.mark.tensorflow_only
def test_cached_loop_in_a_compiled_function(decoder_sequence, encoder_sequence):
    block = make_block()
    encoder_mask = padding(ENCODER_LENGTHS, S)
    full = to_numpy(block(decoder_sequence, encoder_sequence, encoder_padding_mask=encoder_mask))

    @tf.function
    def step(token, cache, cross_cache, index):
        return block(token, decoder_padding_mask=None, encoder_padding_mask=encoder_mask,
                     self_attention_cache=cache, self_attention_cache_update_index=index,
                     cross_attention_cache=cross_cache)

    cross_attention_cache = block.compute_cross_attention_cache(encoder_sequence)
    cache = block.init_self_attention_cache(B, T)
    steps = []
    for index in range(T):
        output, cache = step(decoder_sequence[:, index : index + 1], cache,
                             cross_attention_cache, tf.constant(index))
        steps.append(to_numpy(output))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_cross_attention_cache_equals_the_no_cache_path(decoder_sequence, encoder_sequence):
    block = make_block()
    encoder_mask = padding(ENCODER_LENGTHS, S)
    expected = block(decoder_sequence, encoder_sequence, encoder_padding_mask=encoder_mask)
    outputs = block(decoder_sequence, encoder_padding_mask=encoder_mask,
                    cross_attention_cache=block.compute_cross_attention_cache(encoder_sequence))
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-6)


def test_cross_attention_scores_need_the_encoder_sequence(decoder_sequence, encoder_sequence):
    block = make_block()
    cache = block.compute_cross_attention_cache(encoder_sequence)
    with pytest.raises(ValueError, match="cannot be combined with a `cross_attention_cache`"):
        block(decoder_sequence, cross_attention_cache=cache, return_cross_attention_scores=True)


def test_needs_an_encoder_sequence_or_a_cross_attention_cache(decoder_sequence):
    block = make_block()
    with pytest.raises(ValueError, match="received neither"):
        block(decoder_sequence)


# --- configuration, serialization, mixed precision ----------------------------


def test_rejects_hidden_size_not_divisible_by_heads():
    with pytest.raises(ValueError, match="hidden size 9 and num_heads=2"):
        TransformerDecoderBlock(num_heads=2, intermediate_dim=16)(
            np.zeros((1, 3, 9), "float32"), np.zeros((1, 4, 9), "float32")
        )


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="dropout=-0.5"):
        TransformerDecoderBlock(num_heads=2, intermediate_dim=16, dropout=-0.5)
    with pytest.raises(ValueError, match="intermediate_dim=0"):
        TransformerDecoderBlock(num_heads=2, intermediate_dim=0)


def test_config_round_trip():
    block = TransformerDecoderBlock(
        num_heads=4, intermediate_dim=32, dropout=0.3, activation="gelu", normalize_first=True
    )
    restored = TransformerDecoderBlock.from_config(block.get_config())
    assert restored.get_config() == block.get_config()


def tiny_model(normalize_first=False):
    source = keras.Input((None,), dtype="int32")
    target = keras.Input((None,), dtype="int32")
    encoded = TokenAndPositionEmbedding(20, 16, D)(source)
    x = TokenAndPositionEmbedding(20, 16, D)(target)
    x = TransformerDecoderBlock(num_heads=2, intermediate_dim=16,
                                normalize_first=normalize_first)(x, encoded)
    logits = keras.layers.Dense(20, dtype="float32")(x)
    return keras.Model([source, target], logits, name="decoder_block")


IDS = np.array([[3, 4, 5, 6, 0, 0], [0, 0, 0, 0, 0, 0], [7, 8, 9, 0, 0, 0]], "int32")


@pytest.mark.parametrize("normalize_first", [False, True])
def test_keras_file_round_trip(normalize_first, save_and_load):
    model = tiny_model(normalize_first)
    restored = save_and_load(model)
    inputs = [IDS, IDS[:, ::-1]]
    np.testing.assert_array_equal(to_numpy(restored(inputs)), to_numpy(model(inputs)))


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_forward_and_training_step(dtype_policy):
    model = tiny_model()
    block = model.get_layer(index=4)
    assert isinstance(block, TransformerDecoderBlock)
    assert block.compute_dtype == dtype_policy.removeprefix("mixed_")
    assert np.isfinite(to_numpy(model([IDS, IDS]))).all()
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    before = [to_numpy(w).copy() for w in block.trainable_weights]
    history = model.fit([IDS, IDS], IDS, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = [to_numpy(w) for w in block.trainable_weights]
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.allclose(a, b) for a, b in zip(after, before))


# --- cross-attention weights ---------------------------------------------------


@pytest.mark.parametrize("normalize_first", [False, True])
def test_cross_attention_scores_come_with_the_outputs_of_call(decoder_sequence,
                                                              encoder_sequence, normalize_first):
    block = make_block(normalize_first=normalize_first)
    decoder_mask, encoder_mask = padding(DECODER_LENGTHS, T), padding(ENCODER_LENGTHS, S)
    expected = block(decoder_sequence, encoder_sequence, decoder_padding_mask=decoder_mask,
                     encoder_padding_mask=encoder_mask)
    outputs, weights = block(
        masked(decoder_sequence, decoder_mask), masked(encoder_sequence, encoder_mask),
        return_cross_attention_scores=True,
    )
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-6)
    weights = to_numpy(weights)
    assert weights.shape == (B, 2, T, S)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(weights[~np.broadcast_to(encoder_mask[:, None, None, :], weights.shape)] == 0)


def test_decoder_stacks_every_blocks_cross_attention_scores(decoder_sequence, rng):
    decoder = TransformerDecoder(3, num_heads=2, intermediate_dim=16, dropout=0.0)
    encoder_sequence = rng.normal(size=(B, S, D)).astype("float32")
    encoder_mask = padding(ENCODER_LENGTHS, S)
    expected = decoder(decoder_sequence, encoder_sequence, encoder_padding_mask=encoder_mask)
    outputs, weights = decoder(
        decoder_sequence, encoder_sequence, encoder_padding_mask=encoder_mask,
        return_cross_attention_scores=True,
    )
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-5)
    assert tuple(weights.shape) == (B, 3, 2, T, S)
    x = decoder_sequence
    for index, block in enumerate(decoder.blocks):
        x, block_weights = block(
            x, encoder_sequence, encoder_padding_mask=encoder_mask,
            return_cross_attention_scores=True,
        )
        np.testing.assert_allclose(to_numpy(weights[:, index]), to_numpy(block_weights))


@pytest.mark.parametrize("kernel_initializer", ["glorot_uniform", keras.initializers.HeNormal()])
def test_every_kernel_starts_with_its_own_values(kernel_initializer):
    # One unseeded Keras initializer repeats its values at every call; each
    # weight must get its own copy, or all attention kernels start equal.
    block = TransformerDecoderBlock(
        num_heads=2, intermediate_dim=D, dropout=0.0, kernel_initializer=kernel_initializer
    )
    block.build((None, None, D), (None, None, D))
    kernels = [
        dense.kernel
        for attention in (block.self_attention, block.cross_attention)
        for dense in (attention.query_dense, attention.key_dense, attention.value_dense,
                      attention.output_dense)
    ] + [block.feed_forward.intermediate_dense.kernel, block.feed_forward.output_dense.kernel]
    flat = [np.sort(np.abs(keras.ops.convert_to_numpy(kernel)).ravel()) for kernel in kernels]
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            assert not np.allclose(flat[i], flat[j]), (kernels[i].path, kernels[j].path)


def test_a_seeded_initializer_still_repeats():
    def build():
        block = make_block(kernel_initializer=keras.initializers.GlorotUniform(seed=5))
        return keras.ops.convert_to_numpy(block.self_attention.query_dense.kernel)

    np.testing.assert_array_equal(build(), build())
