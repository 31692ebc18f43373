import keras
from keras import ops

from keras_transformer.layers.initializers import (
    PerHeadKernelInitializer,
    clone_initializer,
)
from keras_transformer.layers.masks import (
    cache_padding_mask,
    causal_mask,
    merge_masks,
    merge_padding_masks,
)
from keras_transformer.layers.validation import (
    check_attention_mask,
    check_padding_mask,
    check_positive_int,
    check_rank,
    check_rate,
    check_same_batch,
)


def scaled_dot_product_attention(query, key, value, mask=None, dropout=None, training=None):
    """softmax(Q K^T / sqrt(Dh)) V over heads (sections 3.2.1 and 3.2.2).

    Heads come before positions, as in the key/value caches: both products
    are then matrix products batched over (B, H) that read the keys and
    values where they are stored. With positions before heads, XLA would
    copy every key and value into this order first, at every decoding step.

    Args:
        query: (B, H, T, Dh).
        key: (B, H, S, Dh).
        value: (B, H, S, Dv).
        mask: None or boolean, broadcastable to (B, T, S); True = may attend.
        dropout: optional Dropout layer applied to the attention weights.
        training: passed to `dropout`.

    Returns:
        (outputs (B, H, T, Dv), weights (B, H, T, S)). The softmax runs in
        float32 and masked scores are set to a large finite negative number,
        so a fully masked row gives uniform weights instead of NaN, under
        float16 and bfloat16 too.
    """
    head_dim = ops.shape(query)[-1]
    query = ops.multiply(query, ops.cast(ops.rsqrt(ops.cast(head_dim, "float32")), query.dtype))
    scores = ops.einsum("bhtd,bhsd->bhts", query, key)  # (B, H, T, S)
    scores = ops.cast(scores, "float32")
    if mask is not None:
        mask = ops.expand_dims(mask, axis=-3)  # (B, 1, T, S)
        scores = ops.where(mask, scores, -1e9)
    weights = ops.cast(ops.softmax(scores, axis=-1), value.dtype)  # (B, H, T, S)
    if dropout is not None:
        weights = dropout(weights, training=training)
    outputs = ops.einsum("bhts,bhsd->bhtd", weights, value)  # (B, H, T, Dv)
    return outputs, weights


def _describe(value):
    if hasattr(value, "shape"):
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)[:80]


def _check_shapes(layer_name, query, value, value_mask, key_mask, attention_mask):
    """Raises ValueError for a value or masks whose static shapes do not fit the query."""
    check_same_batch(layer_name, "query", query.shape, "value", value.shape)
    check_padding_mask(layer_name, "value_mask", value_mask, "value", value.shape)
    check_padding_mask(layer_name, "key_mask", key_mask, "value", value.shape)
    check_attention_mask(layer_name, attention_mask, query.shape, value.shape)


def _check_call_arguments(value, return_attention_scores, cache, cache_update_index):
    """Raises ValueError for argument combinations `MultiHeadAttention` cannot serve."""
    if cache is not None and not (isinstance(cache, (tuple, list)) and len(cache) == 2):
        raise ValueError(
            "`cache` must be a pair `(key_cache, value_cache)` of shapes "
            "(B, H, M, Dh) and (B, H, M, Dv), from `init_cache` or "
            f"`compute_cache`; received {_describe(cache)}. (Caches were one "
            "(B, 2, M, H, Dh) tensor before; split them into keys and values.)"
        )
    if cache is not None and return_attention_scores:
        raise ValueError(
            "`return_attention_scores=True` cannot be combined with a "
            "`cache`; run the layer without a cache to read the weights."
        )
    if value is None and (cache is None or cache_update_index is not None):
        raise ValueError(
            "`value` is required unless a cross-attention `cache` is "
            "passed (a cache without `cache_update_index`)."
        )


@keras.saving.register_keras_serializable(package="keras_transformer")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with a key/value cache.

    Projects queries, keys and values to H heads of size Dh, attends within
    each head, and projects the concatenated heads back (section 3.2.2).

    Masks are boolean, True = may attend. The padding masks of `value` and
    `key` (Keras masks, or `value_mask` / `key_mask`), `attention_mask` and
    the causal mask (`use_causal_mask=True`) are combined with AND. With a
    self-attention cache the padding masks cover the T new entries; the
    other cache entries count as real (see `cache_padding_mask`).

    Caches. A cache holds the projected keys and values of M positions of
    one layer as a pair `(key_cache, value_cache)` of shapes (B, H, M, Dh)
    and (B, H, M, Dv): two tensors, heads before positions, so that a
    decoding loop updates each in place and attention reads them without
    copies (see `scaled_dot_product_attention`).
    - Self-attention while decoding: pass a fixed-length buffer (zeros from
      `init_cache(batch_size, max_length)`) and `cache_update_index`, the
      position of the first query. The keys and values of the T new queries
      are written into the buffer at that index (`ops.slice_update`), and the
      queries attend causally to positions `<= cache_update_index + t`, so the
      unwritten tail of the buffer is never seen.
    - Cross-attention while decoding: compute the cache once per source with
      `compute_cache(value)` and pass it without `cache_update_index`; `value`
      and `key` may then be None and are not projected again.
    With a cache the layer returns `(outputs, cache)`, the updated cache for
    self-attention and the same cache for cross-attention.

    Args:
        num_heads: H.
        key_dim: Dh, the size of each head for queries and keys.
        value_dim: size of each head for values; defaults to `key_dim`.
        dropout: dropout rate on the attention weights.
        use_bias: whether the projections have biases.
        output_dim: size of the output; defaults to the query's last dim.
        kernel_initializer, bias_initializer: for all projections; each
            kernel is drawn with its per-head shape (D, H, Dh) or
            (H, Dv, D), as Keras's own attention layer long did (see
            `PerHeadKernelInitializer`).

    Call arguments:
        query: (B, T, Dq).
        value: (B, S, Dv), or None with a cross-attention cache.
        key: (B, S, Dk); defaults to `value`.
        value_mask, key_mask: optional (B, S) padding masks; filled in from
            Keras masks when not given.
        attention_mask: optional boolean mask broadcastable to (B, T, S).
        use_causal_mask: add a causal mask (a decoder's self-attention).
        return_attention_scores: also return the (B, H, T, S) weights.
        training: enables dropout.
        cache: optional `(key_cache, value_cache)` pair, see above.
        cache_update_index: int or scalar tensor, see above.

    Returns:
        (B, T, output_dim) outputs; `(outputs, weights)` with
        `return_attention_scores=True`; `(outputs, cache)` with a cache.

    Example:
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = keras.ops.ones((1, 3, 8))
    >>> layer(x, x, use_causal_mask=True).shape
    (1, 3, 8)

    Reference:
        Vaswani et al., 2017, sections 3.2.1 and 3.2.2.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_dim=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("num_heads", num_heads)
        check_positive_int("key_dim", key_dim)
        if value_dim is not None:
            check_positive_int("value_dim", value_dim)
        if output_dim is not None:
            check_positive_int("output_dim", output_dim)
        check_rate("dropout", dropout)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.output_dim = output_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _dense(self, units, name, head_shape):
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=PerHeadKernelInitializer(self.kernel_initializer, head_shape),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape, value_shape=None, key_shape=None):
        name = type(self).__name__
        check_rank(name, "query", query_shape, 3)
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        check_rank(name, "value", value_shape, 3)
        check_rank(name, "key", key_shape, 3)
        output_dim = self.output_dim or query_shape[-1]
        heads = self.num_heads
        self.query_dense = self._dense(
            heads * self.key_dim, "query", (query_shape[-1], heads, self.key_dim)
        )
        self.query_dense.build(query_shape)
        self.key_dense = self._dense(
            heads * self.key_dim, "key", (key_shape[-1], heads, self.key_dim)
        )
        self.key_dense.build(key_shape)
        self.value_dense = self._dense(
            heads * self.value_dim, "value", (value_shape[-1], heads, self.value_dim)
        )
        self.value_dense.build(value_shape)
        self.output_dense = self._dense(
            output_dim, "attention_output", (heads, self.value_dim, output_dim)
        )
        self.output_dense.build(tuple(query_shape[:-1]) + (self.num_heads * self.value_dim,))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def _split_heads(self, x, head_dim):
        batch_size, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch_size, length, self.num_heads, head_dim))  # (B, T, H, Dh)
        return ops.transpose(x, (0, 2, 1, 3))  # (B, H, T, Dh)

    def _merge_heads(self, x):
        x = ops.transpose(x, (0, 2, 1, 3))  # (B, T, H, Dv)
        batch_size, length = ops.shape(x)[0], ops.shape(x)[1]
        return ops.reshape(x, (batch_size, length, self.num_heads * self.value_dim))

    def _project_keys_and_values(self, value, key=None):
        key = value if key is None else key
        keys = self._split_heads(self.key_dense(key), self.key_dim)  # (B, H, S, Dh)
        values = self._split_heads(self.value_dense(value), self.value_dim)  # (B, H, S, Dv)
        return keys, values

    def compute_cache(self, value, key=None):
        """Projects keys and values once: the cross-attention cache, a pair
        of (B, H, S, Dh) keys and (B, H, S, Dv) values."""
        return self._project_keys_and_values(value, key)

    def init_cache(self, batch_size, max_length):
        """An empty self-attention cache: zeros of (B, H, max_length, Dh)
        for the keys and (B, H, max_length, Dv) for the values."""
        keys = ops.zeros(
            (batch_size, self.num_heads, max_length, self.key_dim), dtype=self.compute_dtype
        )
        values = ops.zeros(
            (batch_size, self.num_heads, max_length, self.value_dim), dtype=self.compute_dtype
        )
        return keys, values

    def call(
        self,
        query,
        value=None,
        key=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
        cache=None,
        cache_update_index=None,
    ):
        _check_call_arguments(value, return_attention_scores, cache, cache_update_index)
        if value is not None:
            # With a self-attention cache, `attention_mask` spans the cache, not `value`.
            _check_shapes(
                type(self).__name__, query, value, value_mask, key_mask,
                attention_mask if cache_update_index is None else None,
            )
        if cache is not None and cache_update_index is not None:
            key_shape = (cache[0].shape[0], cache[0].shape[2])  # (B, M)
            check_attention_mask(type(self).__name__, attention_mask, query.shape, key_shape)
        queries = self._split_heads(self.query_dense(query), self.key_dim)  # (B, H, T, Dh)
        if cache is not None and cache_update_index is None:
            keys, values = cache  # (B, H, S, Dh), (B, H, S, Dv)
        else:
            keys, values = self._project_keys_and_values(value, key)  # (B, H, S, Dh|Dv)
            if cache is not None:
                start = (0, 0, cache_update_index, 0)
                keys = ops.slice_update(cache[0], start, keys)  # (B, H, M, Dh)
                values = ops.slice_update(cache[1], start, values)  # (B, H, M, Dv)
                cache = (keys, values)

        query_length, key_length = ops.shape(queries)[2], ops.shape(keys)[2]
        causal = None
        if use_causal_mask or cache_update_index is not None:
            start = 0 if cache_update_index is None else cache_update_index
            causal = causal_mask(query_length, key_length, start)
        padding_mask = merge_padding_masks(value_mask, key_mask)  # (B, S)
        if padding_mask is not None and cache_update_index is not None:
            padding_mask = cache_padding_mask(padding_mask, key_length, cache_update_index)
        mask = merge_masks(padding_mask, attention_mask, causal)  # (B, T, S)

        outputs, weights = scaled_dot_product_attention(
            queries, keys, values, mask, self.dropout_layer, training
        )  # (B, H, T, Dv), (B, H, T, S)
        outputs = self.output_dense(self._merge_heads(outputs))  # (B, T, D)
        if cache is not None:
            return outputs, cache
        if return_attention_scores:
            return outputs, weights
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "output_dim": self.output_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
