"""Argument checks, the per-model compile cache and small tensor helpers
shared by the searches.

The searches are written with `keras.ops`, so one implementation runs
under every supported backend; only the compiler differs (see
`compiled_search`).

Shape letters: see `keras_transformer` (B, K, S, M, V).
"""

import numbers
import weakref
from typing import Any

import keras
from keras import ops

from keras_transformer.layers.validation import check_positive_int, values_unknown
from keras_transformer.models import Seq2SeqTransformer, check_seq2seq_model

# Logit of a token that must not be chosen: finite, so that a row where
# every token is excluded still gives finite softmaxes instead of NaN.
EXCLUDED_LOGIT = -1e9

# A tensor of the Keras backend: tf.Tensor, jax.Array or torch.Tensor.
Tensor = Any

SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")

# model -> {(search, settings): compiled search}. The compiled searches reach
# the model through a weak reference, so an entry goes away with its model.
_COMPILED = weakref.WeakKeyDictionary()


def check_model(model) -> Seq2SeqTransformer:
    """`model` if the searches can decode it under this backend; else a ValueError."""
    model = check_seq2seq_model(model, "Decoding")
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            "The searches run under the TensorFlow, JAX and torch backends; "
            f"the Keras backend is '{backend}'. Set KERAS_BACKEND to one of "
            f"{SUPPORTED_BACKENDS} before importing Keras, or decode step by "
            "step with `model.decode_step`."
        )
    return model


def compiled_search(model: Seq2SeqTransformer, search, **settings):
    """`search(model, *tensors, **settings)`, compiled for the backend.

    TensorFlow: `tf.function(jit_compile=True)`, the XLA program the export
    also traces. JAX: `jax.jit`, with the model's variables passed as
    arguments, so later weight updates are seen. torch: the plain function,
    run eagerly. One compiled function per model and settings; it is traced
    once per input shape, so repeated calls with the same shapes reuse the
    XLA program.
    """
    searches = _COMPILED.setdefault(model, {})
    settings = {
        name: int(value) if isinstance(value, numbers.Integral) else value
        for name, value in settings.items()
    }
    key = (search, tuple(sorted(settings.items())))
    if key not in searches:
        model_reference = weakref.ref(model)

        def run(*tensors):
            return search(model_reference(), *tensors, **settings)

        searches[key] = _compile(run, model.variables)
    return searches[key]


def _compile(function, variables):
    """`function` compiled for the Keras backend (see `compiled_search`)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    if backend == "jax":
        return _jax_jit(function, variables)
    return function


def _jax_jit(function, variables):
    """`function` under `jax.jit`, reading `variables` from arguments.

    A variable read inside `jax.jit` would be baked into the program as a
    constant; mapping the variables to traced arguments with a
    `StatelessScope` keeps the program valid after training.
    """
    import jax

    def stateless(values, *tensors):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return function(*tensors)

    jitted = jax.jit(stateless)

    def run(*tensors):
        return jitted([variable.value for variable in variables], *tensors)

    return run


def check_encoder_token_ids(encoder_token_ids, model: Seq2SeqTransformer) -> Tensor:
    """Converts to an int32 (B, S) tensor, or raises a ValueError.

    Checks the ids against the model: S >= 1, S within a learned position
    table, and ids in [0, source vocabulary size) when their values are
    known (outside a `tf.function` or `jax.jit`): inside the XLA loop an
    out-of-range id would read a clamped embedding row silently.
    """
    ids = ops.convert_to_tensor(encoder_token_ids)
    shape = tuple(ids.shape)
    if len(shape) != 2:
        raise ValueError(
            "`encoder_token_ids` must have shape (batch, source_length); received "
            f"shape {shape} (rank {len(shape)}). Add a batch axis for a single "
            "sentence: `ids[None]`."
        )
    dtype = keras.backend.standardize_dtype(ids.dtype)
    if not dtype.startswith(("int", "uint")):
        raise ValueError(
            f"`encoder_token_ids` must hold integer token ids; received dtype "
            f"{dtype}. Cast them to int32 (0 = padding)."
        )
    if shape[1] == 0:
        raise ValueError(
            "`encoder_token_ids` must hold at least one token per row (source "
            f"tokens then the end token); received shape {shape}."
        )
    limit = model.max_source_length
    if limit is not None and shape[1] is not None and shape[1] > limit:
        raise ValueError(
            f"The model has learned source positions for {limit} tokens "
            f"(`max_sequence_length`), so `encoder_token_ids` can be at most {limit} "
            f"wide. Received shape {shape}."
        )
    values = None if values_unknown(ids) else ops.convert_to_numpy(ids)
    if values is not None and values.size > 0:
        vocabulary_size = model.source_vocabulary_size
        lowest, highest = int(values.min()), int(values.max())
        if lowest < 0 or highest >= vocabulary_size:
            raise ValueError(
                f"`encoder_token_ids` must be source token ids in [0, {vocabulary_size}) "
                f"(the model's source vocabulary size). Received a token id "
                f"{lowest if lowest < 0 else highest}."
            )
    return ops.cast(ids, "int32")


def check_settings(
    model: Seq2SeqTransformer,
    start_token_id: int,
    end_token_id: int | None,
    max_length: int,
) -> None:
    """Checks the settings every search shares against the model."""
    vocabulary_size = model.target_vocabulary_size
    token_ids = {"start_token_id": start_token_id, "end_token_id": end_token_id}
    for name, value in token_ids.items():
        if value is None and name == "end_token_id":
            continue
        is_integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not is_integer or not 0 < value < vocabulary_size:
            raise ValueError(
                f"`{name}` must be a token id in [1, {vocabulary_size}) (0 is "
                f"padding; the target vocabulary has {vocabulary_size} ids). "
                f"Received: {name}={value!r}"
            )
    check_positive_int("max_length", max_length)
    limit = model.max_target_length
    if limit is not None and max_length > limit:
        raise ValueError(
            f"The model has learned target positions for {limit} "
            f"tokens (`max_sequence_length`), so `max_length` can be at most "
            f"{limit}. Received: max_length={max_length}"
        )


def check_search(
    model, encoder_token_ids, start_token_id: int, end_token_id: int | None, max_length: int
) -> tuple[Seq2SeqTransformer, Tensor]:
    """The checks every search runs first: `(model, int32 (B, S) ids)` or a ValueError."""
    model = check_model(model)
    encoder_token_ids = check_encoder_token_ids(encoder_token_ids, model)
    check_settings(model, start_token_id, end_token_id, max_length)
    return model, encoder_token_ids


def exclude_padding(logits):
    """Logits (..., V) with the padding id 0 excluded: it is never generated."""
    is_padding = ops.equal(ops.arange(ops.shape(logits)[-1]), 0)  # (V,)
    return ops.where(is_padding, EXCLUDED_LOGIT, logits)


def argmax(logits: Tensor) -> Tensor:
    """int32 (...) index of the largest of logits (..., V), the first on ties.

    Written as the maximum, then the first position holding it: two plain
    reductions. XLA on CPU runs `argmax`'s (value, index) reduction
    unvectorized, about 2x slower at batch 32 (4% of a greedy step), and
    under TensorFlow `keras.ops.argmax` adds a BitwiseAnd (it maps -0.0 to
    a tiny negative number), which is not a TFLite builtin; these ops are
    builtins on every backend. A row without a maximum (NaN logits) gives
    V - 1, still a valid id.
    """
    vocabulary_size = ops.shape(logits)[-1]
    largest = ops.max(logits, axis=-1, keepdims=True)  # (..., 1)
    positions = ops.arange(vocabulary_size, dtype="int32")  # (V,)
    at_largest = ops.where(ops.equal(logits, largest), positions, vocabulary_size - 1)
    return ops.cast(ops.min(at_largest, axis=-1), "int32")


def write_position(tokens, index, values):
    """`tokens[..., index] = values` as a one-hot blend, which keeps shapes
    fixed and converts to TFLite builtins.

    Args:
        tokens: int32 (..., M).
        index: int32 scalar.
        values: int32 (...).
    """
    at_index = ops.equal(ops.arange(ops.shape(tokens)[-1]), index)  # (M,)
    return ops.where(at_index, values[..., None], tokens)


def is_end(token_ids, end_token_id):
    """Boolean `token_ids == end_token_id`; all False when it is None."""
    if end_token_id is None:
        return ops.zeros_like(token_ids, dtype="bool")
    return ops.equal(token_ids, end_token_id)


def log_probabilities(logits, token_ids):
    """float32 (...) log-softmax of logits (..., V) at int32 `token_ids` (...).

    One `log_softmax` (a single optimized TFLite kernel in the exported
    loop), then the chosen entry as a masked sum.
    """
    is_chosen = ops.equal(ops.arange(ops.shape(logits)[-1]), token_ids[..., None])  # (..., V)
    return ops.sum(ops.where(is_chosen, ops.log_softmax(logits, axis=-1), 0.0), axis=-1)
