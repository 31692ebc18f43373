import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.layers import MultiHeadAttention, scaled_dot_product_attention
from keras_transformer.layers.initializers import PerHeadKernelInitializer
from keras_transformer.layers.masks import set_keras_mask

B, T, S, H, DH = 2, 5, 7, 2, 4
D = H * DH  # query and output size
DV = 6  # size of the value inputs (cross-attention)


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")).astype("float64")


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)


def reference_attention(layer, query, value, key=None, mask=None):
    """softmax(Q K^T / sqrt(Dh)) V with the layer's projections, in float64.

    Returns (outputs (B, T, D), weights (B, H, T, S)); `mask` is boolean,
    broadcastable to (B, T, S), True = may attend, with no fully masked row.
    """
    key = value if key is None else key

    def project(x, dense, head_dim):
        y = to_numpy(x) @ to_numpy(dense.kernel) + to_numpy(dense.bias)
        return y.reshape(y.shape[0], y.shape[1], layer.num_heads, head_dim)  # (B, T, H, Dh)

    queries = project(query, layer.query_dense, layer.key_dim)
    keys = project(key, layer.key_dense, layer.key_dim)
    values = project(value, layer.value_dense, layer.value_dim)
    scores = np.einsum("bthd,bshd->bhts", queries, keys) / np.sqrt(layer.key_dim)
    if mask is not None:
        scores = np.where(np.asarray(mask)[:, None], scores, -np.inf)
    weights = softmax(scores)  # (B, H, T, S)
    heads = np.einsum("bhts,bshd->bthd", weights, values)
    heads = heads.reshape(heads.shape[0], heads.shape[1], -1)  # (B, T, H * Dv)
    outputs = heads @ to_numpy(layer.output_dense.kernel) + to_numpy(layer.output_dense.bias)
    return outputs, weights


def make_layer(value_size=D, **kwargs):
    """A built layer with random (non-zero) biases, so the reference checks them."""
    layer = MultiHeadAttention(H, DH, bias_initializer="random_normal", **kwargs)
    layer.build((None, None, D), (None, None, value_size))
    return layer


def padding(lengths, length):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]  # (B, S)


def causal(length):
    return np.tril(np.ones((length, length), bool))  # (T, T)


@pytest.fixture
def inputs(rng):
    return {
        "x": rng.normal(size=(B, T, D)).astype("float32"),
        "query": rng.normal(size=(B, T, D)).astype("float32"),
        "value": rng.normal(size=(B, S, DV)).astype("float32"),
        "explicit": rng.random((B, T, T)) < 0.5,
    }


def test_cross_attention_matches_reference(inputs):
    layer = make_layer(DV)
    outputs = layer(inputs["query"], inputs["value"])
    assert outputs.shape == (B, T, D)
    expected, _ = reference_attention(layer, inputs["query"], inputs["value"])
    np.testing.assert_allclose(to_numpy(outputs), expected, atol=1e-5)


def test_cross_attention_with_padding_matches_reference(inputs):
    layer = make_layer(DV)
    value_mask = padding([7, 3], S)
    outputs = layer(inputs["query"], inputs["value"], value_mask=value_mask)
    expected, _ = reference_attention(
        layer, inputs["query"], inputs["value"], mask=value_mask[:, None]
    )
    np.testing.assert_allclose(to_numpy(outputs), expected, atol=1e-5)


@pytest.mark.parametrize("masks", [("padding",), ("causal",), ("explicit",),
                                   ("padding", "causal"), ("padding", "causal", "explicit")])
def test_self_attention_masks_match_reference(inputs, masks):
    layer = make_layer()
    x = inputs["x"]
    explicit = inputs["explicit"] | np.eye(T, dtype=bool)  # every query sees itself
    kwargs, mask = {}, np.ones((B, T, T), bool)
    if "padding" in masks:
        kwargs["value_mask"] = padding([5, 2], T)
        mask &= kwargs["value_mask"][:, None]
    if "causal" in masks:
        kwargs["use_causal_mask"] = True
        mask &= causal(T)
    if "explicit" in masks:
        kwargs["attention_mask"] = explicit
        mask &= explicit
    if "padding" in masks:
        mask[:, :, 0] |= ~mask.any(-1)  # padded queries may see no key; they are not compared
    outputs, weights = layer(x, x, return_attention_scores=True, **kwargs)
    expected, expected_weights = reference_attention(layer, x, x, mask=mask)
    real = padding([5, 2], T) if "padding" in masks else np.ones((B, T), bool)
    np.testing.assert_allclose(to_numpy(outputs)[real], expected[real], atol=1e-5)
    weights = to_numpy(weights).transpose(0, 2, 1, 3)  # (B, T, H, S)
    expected_weights = expected_weights.transpose(0, 2, 1, 3)
    np.testing.assert_allclose(weights[real], expected_weights[real], atol=1e-6)


def test_attention_scores_are_distributions(inputs):
    layer = make_layer(DV)
    _, weights = layer(inputs["query"], inputs["value"], return_attention_scores=True)
    assert weights.shape == (B, H, T, S)
    np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, atol=1e-6)


def test_keras_masks_are_read_when_no_padding_mask_is_passed(inputs):
    layer = make_layer(DV)
    value_mask = padding([4, 6], S)
    value = keras.ops.convert_to_tensor(inputs["value"])
    set_keras_mask(value, keras.ops.convert_to_tensor(value_mask))
    from_keras_mask = layer(inputs["query"], value)
    explicit = layer(inputs["query"], inputs["value"], value_mask=value_mask)
    unmasked = layer(inputs["query"], inputs["value"])
    np.testing.assert_array_equal(to_numpy(from_keras_mask), to_numpy(explicit))
    assert not np.allclose(to_numpy(from_keras_mask), to_numpy(unmasked))


def test_value_and_key_padding_masks_are_combined(inputs):
    layer = make_layer(DV)
    value_mask, key_mask = padding([6, 5], S), padding([4, 7], S)
    outputs = layer(inputs["query"], inputs["value"], value_mask=value_mask, key_mask=key_mask)
    expected, _ = reference_attention(
        layer, inputs["query"], inputs["value"], mask=(value_mask & key_mask)[:, None]
    )
    np.testing.assert_allclose(to_numpy(outputs), expected, atol=1e-5)


def test_separate_key_input_matches_reference(inputs, rng):
    layer = MultiHeadAttention(H, DH, value_dim=3, output_dim=5)
    key = rng.normal(size=(B, S, 9)).astype("float32")
    outputs = layer(inputs["query"], inputs["value"], key)
    assert outputs.shape == (B, T, 5)
    expected, _ = reference_attention(layer, inputs["query"], inputs["value"], key)
    np.testing.assert_allclose(to_numpy(outputs), expected, atol=1e-5)


@pytest.mark.parametrize(
    "dtype, atol",
    [("float32", 1e-5), ("float16", 2e-2), ("bfloat16", 1e-1),
     ("mixed_float16", 2e-2), ("mixed_bfloat16", 1e-1)],
)
def test_fully_masked_rows_are_finite_and_uniform(inputs, dtype, atol):
    layer = make_layer(DV, dtype=dtype)
    query = keras.ops.cast(inputs["query"], layer.compute_dtype)
    value = keras.ops.cast(inputs["value"], layer.compute_dtype)
    attention_mask = np.ones((B, T, S), bool)
    attention_mask[0, 1] = False  # one fully masked query row
    value_mask = padding([S, 0], S)  # a fully padded batch element
    outputs = layer(query, value, value_mask=value_mask, attention_mask=attention_mask)
    assert keras.backend.standardize_dtype(outputs.dtype) == layer.compute_dtype
    outputs = to_numpy(outputs)
    assert np.isfinite(outputs).all()

    # A fully masked row attends uniformly to all keys; the others as usual.
    expected, _ = reference_attention(layer, inputs["query"], inputs["value"])
    values = to_numpy(layer.value_dense(inputs["value"]))  # (B, S, H * Dh)
    uniform = values.mean(axis=1) @ to_numpy(layer.output_dense.kernel)
    uniform += to_numpy(layer.output_dense.bias)  # (B, D)
    expected[0, 1] = uniform[0]
    expected[1] = uniform[1]
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(outputs, expected, atol=atol * scale)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_scaled_dot_product_attention_masks_in_low_precision(dtype):
    query = keras.ops.full((1, 1, 2, 4), 3.0, dtype)  # (B, H, T, Dh)
    key = keras.ops.full((1, 1, 3, 4), 3.0, dtype)  # (B, H, S, Dh)
    value = keras.ops.convert_to_tensor(np.arange(12).reshape(1, 1, 3, 4), dtype)
    mask = np.array([[[True, False, False], [False, False, False]]])  # (B, T, S)
    outputs, weights = scaled_dot_product_attention(query, key, value, mask)
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype
    assert tuple(outputs.shape) == (1, 1, 2, 4)
    expected_weights = [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]]
    np.testing.assert_allclose(to_numpy(weights)[0, 0], expected_weights, atol=1e-2)
    np.testing.assert_allclose(to_numpy(outputs)[0, 0], [[0, 1, 2, 3], [4, 5, 6, 7]], atol=5e-2)


@pytest.mark.parametrize("query_length", [1, 3])
def test_scaled_dot_product_attention_is_head_major(rng, query_length):
    query = rng.normal(size=(2, 3, query_length, 4)).astype("float32")  # (B, H, T, Dh)
    key = rng.normal(size=(2, 3, 5, 4)).astype("float32")  # (B, H, S, Dh)
    value = rng.normal(size=(2, 3, 5, 6)).astype("float32")  # (B, H, S, Dv)
    mask = rng.random((2, query_length, 5)) < 0.7
    mask[..., 0] = True
    outputs, weights = scaled_dot_product_attention(query, key, value, mask)
    scores = np.einsum("bhtd,bhsd->bhts", query, key) / 2.0
    expected_weights = softmax(np.where(mask[:, None], scores, -np.inf))
    np.testing.assert_allclose(to_numpy(weights), expected_weights, atol=1e-6)
    expected = np.einsum("bhts,bhsd->bhtd", expected_weights, value)
    np.testing.assert_allclose(to_numpy(outputs), expected, atol=1e-5)


def test_dropout_only_in_training(inputs):
    layer = make_layer(DV, dropout=0.5)
    inference = layer(inputs["query"], inputs["value"], training=False)
    training = layer(inputs["query"], inputs["value"], training=True)
    expected, _ = reference_attention(layer, inputs["query"], inputs["value"])
    np.testing.assert_allclose(to_numpy(inference), expected, atol=1e-5)
    assert not np.allclose(to_numpy(training), expected, atol=1e-3)


# --- key/value cache ---------------------------------------------------------


@pytest.mark.parametrize("extra_length", [0, 3])
def test_token_by_token_cache_equals_full_causal_pass(inputs, extra_length):
    layer = make_layer()
    x = inputs["x"]
    full = to_numpy(layer(x, x, use_causal_mask=True))
    cache = layer.init_cache(B, T + extra_length)
    assert [tuple(part.shape) for part in cache] == [(B, H, T + extra_length, DH)] * 2
    steps = []
    for index in range(T):
        step, cache = layer(x[:, index : index + 1], x[:, index : index + 1],
                            cache=cache, cache_update_index=index)
        steps.append(to_numpy(step))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    key_cache, value_cache = to_numpy(cache[0]), to_numpy(cache[1])  # (B, H, L, Dh)
    np.testing.assert_allclose(key_cache[:, :, T:], 0.0)
    np.testing.assert_allclose(value_cache[:, :, T:], 0.0)
    keys = to_numpy(layer.key_dense(x)).reshape(B, T, H, DH).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(key_cache[:, :, :T], keys, atol=1e-6)


@pytest.mark.tensorflow_only
def test_cache_loop_in_a_compiled_function_with_a_tensor_index(inputs):
    layer = make_layer()
    x = inputs["x"]
    full = to_numpy(layer(x, x, use_causal_mask=True))

    @tf.function
    def step(token, cache, index):
        return layer(token, token, cache=cache, cache_update_index=index)

    cache = layer.init_cache(B, T)
    steps = []
    for index in range(T):
        output, cache = step(x[:, index : index + 1], cache, tf.constant(index))
        steps.append(to_numpy(output))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_cache_prefill_then_steps_with_padding_equals_full_pass(inputs):
    """A multi-token prefill with a padding mask, then single steps."""
    layer = make_layer()
    x = inputs["x"]
    lengths = [T, 3]
    mask = padding(lengths, T)
    full = to_numpy(layer(x, x, value_mask=mask, use_causal_mask=True))
    cache = layer.init_cache(B, T + 2)
    prefill, cache = layer(x[:, :3], x[:, :3], value_mask=mask[:, :3],
                           cache=cache, cache_update_index=0)
    steps = [to_numpy(prefill)]
    for index in range(3, T):
        step, cache = layer(x[:, index : index + 1], x[:, index : index + 1],
                            value_mask=mask[:, index : index + 1],
                            cache=cache, cache_update_index=index)
        steps.append(to_numpy(step))
    np.testing.assert_allclose(np.concatenate(steps, axis=1)[mask], full[mask], atol=1e-5)


def test_cross_attention_cache_equals_the_no_cache_path(inputs):
    layer = make_layer(DV)
    value_mask = padding([5, 7], S)
    expected = layer(inputs["query"], inputs["value"], value_mask=value_mask)
    cache = layer.compute_cache(inputs["value"])
    assert [tuple(part.shape) for part in cache] == [(B, H, S, DH)] * 2
    outputs, returned = layer(inputs["query"], value_mask=value_mask, cache=cache)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), atol=1e-6)
    for returned_part, part in zip(returned, cache, strict=True):
        np.testing.assert_array_equal(to_numpy(returned_part), to_numpy(part))
    for index in range(T):
        step, _ = layer(inputs["query"][:, index : index + 1], value_mask=value_mask, cache=cache)
        np.testing.assert_allclose(to_numpy(step)[:, 0], to_numpy(expected)[:, index], atol=1e-6)


def test_cache_misuse_raises(inputs):
    layer = make_layer()
    x = inputs["x"]
    with pytest.raises(ValueError, match="`value` is required"):
        layer(x)
    with pytest.raises(ValueError, match="`value` is required"):
        layer(x, cache=layer.init_cache(B, T), cache_update_index=0)
    with pytest.raises(ValueError, match="return_attention_scores"):
        layer(x, x, cache=layer.init_cache(B, T), cache_update_index=0,
              return_attention_scores=True)
    with pytest.raises(ValueError, match=r"pair.*received a tensor of shape \(2, 2, 5, 2, 4\)"):
        layer(x, x, cache=np.zeros((B, 2, T, H, DH), "float32"), cache_update_index=0)


def test_cache_with_value_dim_different_from_key_dim(inputs):
    layer = MultiHeadAttention(H, DH, value_dim=3)
    layer.build((None, None, D))
    x = inputs["x"]
    full = to_numpy(layer(x, x, use_causal_mask=True))
    cache = layer.init_cache(B, T)
    assert [tuple(part.shape) for part in cache] == [(B, H, T, DH), (B, H, T, 3)]
    steps = []
    for index in range(T):
        step, cache = layer(x[:, index : index + 1], x[:, index : index + 1],
                            cache=cache, cache_update_index=index)
        steps.append(to_numpy(step))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


# --- configuration, serialization, training -----------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_heads": 0}, "num_heads=0"),
        ({"key_dim": -2}, "key_dim=-2"),
        ({"value_dim": 0}, "value_dim=0"),
        ({"output_dim": 1.5}, "output_dim=1.5"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"dropout": -0.1}, "dropout=-0.1"),
    ],
)
def test_rejects_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(**{"num_heads": H, "key_dim": DH, **kwargs})


def test_rejects_wrong_input_rank():
    with pytest.raises(ValueError, match=r"`query` of rank 3.*\(2, 8\)"):
        MultiHeadAttention(H, DH)(np.zeros((2, 8), "float32"), np.zeros((2, 3, 8), "float32"))
    with pytest.raises(ValueError, match=r"`value` of rank 3.*\(2, 3, 1, 8\)"):
        MultiHeadAttention(H, DH)(np.zeros((2, 3, 8), "float32"),
                                  np.zeros((2, 3, 1, 8), "float32"))


def test_config_round_trip():
    layer = MultiHeadAttention(
        3, 5, value_dim=2, dropout=0.2, use_bias=False, output_dim=7,
        kernel_initializer="he_normal", name="attention",
    )
    restored = MultiHeadAttention.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()


def test_trains_and_keras_file_round_trip(inputs, save_and_load):
    query = keras.Input((None, D))
    value = keras.Input((None, DV))
    outputs, weights = MultiHeadAttention(H, DH, use_bias=False)(
        query, value, use_causal_mask=True, return_attention_scores=True
    )
    assert tuple(weights.shape) == (None, H, None, None)
    model = keras.Model([query, value], [outputs, weights], name="attention")
    data = [inputs["query"], inputs["value"]]
    trainer = keras.Model([query, value], outputs)
    trainer.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", run_eagerly=True)
    history = trainer.fit(data, np.zeros((B, T, D)), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    restored = save_and_load(model)
    for got, want in zip(restored(data), model(data)):
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))


def test_kernels_are_drawn_with_fans_over_the_per_head_shape():
    keras.utils.set_random_seed(3)
    layer = MultiHeadAttention(num_heads=4, key_dim=32)
    layer.build((1, 3, 128), (1, 3, 128))
    # glorot uniform on (D, H, Dh): fans H * D and Dh * D; on (H, Dh, D): Dh * H and D * H.
    qkv_limit = np.sqrt(6 / (4 * 128 + 32 * 128))
    output_limit = np.sqrt(6 / (32 * 4 + 128 * 4))
    for dense, limit in (
        (layer.query_dense, qkv_limit),
        (layer.key_dense, qkv_limit),
        (layer.value_dense, qkv_limit),
        (layer.output_dense, output_limit),
    ):
        kernel = to_numpy(dense.kernel)
        assert kernel.shape == (128, 128)
        assert 0.95 * limit < np.abs(kernel).max() <= limit
        # uniform(-limit, limit) has standard deviation limit / sqrt(3).
        np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3), rtol=0.02)


def test_fan_free_initializers_draw_the_same_distribution():
    keras.utils.set_random_seed(3)
    layer = MultiHeadAttention(num_heads=4, key_dim=8, kernel_initializer="random_normal")
    layer.build((1, 3, 32), (1, 3, 32))
    kernel = to_numpy(layer.query_dense.kernel)
    np.testing.assert_allclose(kernel.std(), 0.05, rtol=0.1)  # random_normal: stddev 0.05


def test_per_head_kernel_initializer_round_trips_and_checks_the_shape():
    initializer = PerHeadKernelInitializer("glorot_uniform", (8, 2, 4))
    restored = keras.initializers.deserialize(keras.initializers.serialize(initializer))
    assert isinstance(restored, PerHeadKernelInitializer)
    assert restored.head_shape == (8, 2, 4)
    assert tuple(restored((8, 8)).shape) == (8, 8)
    with pytest.raises(ValueError, match=r"shape \(8, 2, 4\); received a kernel of shape \(8, 9\)"):
        initializer((8, 9))
