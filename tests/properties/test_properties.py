"""Property-based tests (hypothesis) on random small models and inputs.

Every example builds a fresh random model from a drawn configuration: 1-2
layers, D in [8, 32] divisible by H in [1, 4], F in [8, 64], vocabularies of
10-50 ids, pre- or post-norm, sinusoidal or learned positions, tied or
separate output projection. Inputs are B in [1, 4] rows of 1-12 tokens
(B >= 2 where rows are compared), right-padded with 0 to the longest row.

Properties:
- padding: appending padding to the source leaves the encoder output at real
  positions unchanged; appending padding to the source and the target
  leaves the logits at real target positions unchanged;
- causality: changing target token t leaves the logits at positions < t
  unchanged (bit for bit: masked attention weights are exactly 0);
- the cached, XLA-compiled greedy search equals the uncached recompute
  reference of `decoding_reference` token for token;
- rows are independent: each row decoded alone (at its own length) equals
  its row of the batch;
- export parity (slow): Keras greedy == SavedModel `translate_ids` ==
  float32 TFLite `translate` tokens, and Keras == SavedModel scores (the
  TFLite greedy loop returns none), after relabelling the
  target ids so that [END] is a token the model generates.

The searches' end token is one the model generates at a drawn row and step,
so that rows end at different steps.

Examples are few (a model is built, and a search compiled, per example) and
derandomized with no example database, so CI runs the same examples every
time and nothing is written into the repository.

Shape letters: B batch, S source length, T target length, M max_length,
V target vocabulary.
"""

import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_transformer import build_seq2seq_transformer
from keras_transformer.data import END_ID, RESERVED_TOKENS, START_ID
from keras_transformer.decoding import greedy_search
from keras_transformer.export import export_saved_model, export_tflite
from keras_transformer.models import DECODER_INPUT, ENCODER_INPUT, Seq2SeqTransformer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "decoding"))
from decoding_reference import START, pad_rows, uncached_greedy  # noqa: E402

MAX_SEQUENCE_LENGTH = 24
MAX_TOKENS = 12
MAX_EXTRA_PADDING = 6


def property_settings(max_examples: int) -> settings:
    """Reproducible settings: derandomized, no example database, no deadline.

    The autouse `seed` fixture runs once per test, not per example; each
    example seeds its own model, hence the suppressed fixture check."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


@st.composite
def model_configs(draw) -> dict:
    num_heads = draw(st.integers(1, 4))
    return {
        "source_vocabulary_size": draw(st.integers(10, 50)),
        "target_vocabulary_size": draw(st.integers(10, 50)),
        "num_layers": draw(st.integers(1, 2)),
        "num_heads": num_heads,
        "hidden_dim": draw(st.sampled_from([d for d in range(8, 33) if d % num_heads == 0])),
        "intermediate_dim": draw(st.integers(8, 64)),
        "normalize_first": draw(st.booleans()),
        "position_encoding": draw(st.sampled_from(["sinusoidal", "learned"])),
        "tie_embeddings": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


@st.composite
def padded_ids(
    draw, vocabulary_size: int, batch_size: int, min_tokens: int = 1, max_tokens: int = MAX_TOKENS
):
    """int32 (B, longest row): rows of `min_tokens` to `max_tokens` ids in
    [1, V), then 0."""
    rows = draw(
        st.lists(
            st.lists(
                st.integers(1, vocabulary_size - 1), min_size=min_tokens, max_size=max_tokens
            ),
            min_size=batch_size,
            max_size=batch_size,
        )
    )
    return pad_rows(rows, max(len(row) for row in rows))


def build_random_model(config: dict) -> Seq2SeqTransformer:
    """A random model of `config`, as `decoding_reference.build_model` makes
    them: no dropout, the decoder's attention output projections scaled up
    so that the next token depends on the source and the prefix."""
    config = dict(config)
    keras.utils.set_random_seed(config.pop("seed"))
    model = build_seq2seq_transformer(
        **config, dropout=0.0, max_sequence_length=MAX_SEQUENCE_LENGTH
    )
    for weight in model.weights:
        if weight.path.startswith("decoder/") and weight.path.endswith("output/kernel"):
            weight.assign(weight.numpy() * 3.0)
    return model


def encoder_outputs(model: Seq2SeqTransformer, source: np.ndarray) -> np.ndarray:
    """float32 (B, S, D), the encoder stack's output for `source` (B, S)."""
    outputs, _ = model.encode(source)  # (B, S, D)
    return np.asarray(outputs)


def logits(model: Seq2SeqTransformer, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """float32 (B, T, V) from one teacher-forced pass."""
    return np.asarray(model({ENCODER_INPUT: source, DECODER_INPUT: target}))


def pad_columns(ids: np.ndarray, extra: int) -> np.ndarray:
    return np.pad(ids, ((0, 0), (0, extra)))


@property_settings(max_examples=10)
@given(data=st.data())
def test_appended_source_padding_leaves_the_encoder_output_unchanged(data):
    config = data.draw(model_configs(), label="config")
    model = build_random_model(config)
    source = data.draw(
        padded_ids(config["source_vocabulary_size"], data.draw(st.integers(1, 4))),
        label="source",
    )
    extra = data.draw(st.integers(1, MAX_EXTRA_PADDING), label="extra padding")
    expected = encoder_outputs(model, source)  # (B, S, D)
    padded = encoder_outputs(model, pad_columns(source, extra))[:, : source.shape[1]]
    is_real = source != 0  # (B, S)
    np.testing.assert_allclose(padded[is_real], expected[is_real], rtol=1e-5, atol=1e-5)


@property_settings(max_examples=10)
@given(data=st.data())
def test_appended_padding_leaves_the_logits_at_real_positions_unchanged(data):
    config = data.draw(model_configs(), label="config")
    model = build_random_model(config)
    batch_size = data.draw(st.integers(1, 4), label="batch size")
    source = data.draw(
        padded_ids(config["source_vocabulary_size"], batch_size), label="source"
    )
    target = data.draw(
        padded_ids(config["target_vocabulary_size"], batch_size), label="target"
    )
    extra_source = data.draw(st.integers(0, MAX_EXTRA_PADDING), label="extra source padding")
    extra_target = data.draw(st.integers(1, MAX_EXTRA_PADDING), label="extra target padding")
    expected = logits(model, source, target)  # (B, T, V)
    padded = logits(
        model, pad_columns(source, extra_source), pad_columns(target, extra_target)
    )[:, : target.shape[1]]
    is_real = target != 0  # (B, T)
    np.testing.assert_allclose(padded[is_real], expected[is_real], rtol=1e-5, atol=1e-5)


@property_settings(max_examples=10)
@given(data=st.data())
def test_changing_target_token_t_leaves_earlier_logits_unchanged(data):
    config = data.draw(model_configs(), label="config")
    model = build_random_model(config)
    vocabulary_size = config["target_vocabulary_size"]
    batch_size = data.draw(st.integers(1, 4), label="batch size")
    source = data.draw(
        padded_ids(config["source_vocabulary_size"], batch_size), label="source"
    )
    target = data.draw(padded_ids(vocabulary_size, batch_size, min_tokens=2), label="target")
    position = data.draw(st.integers(1, target.shape[1] - 1), label="t")
    shift = data.draw(st.integers(1, vocabulary_size - 2), label="token shift")
    changed = target.copy()
    # Real tokens at t become other real tokens (ids 1..V-1 shifted cyclically).
    new_tokens = (target[:, position] - 1 + shift) % (vocabulary_size - 1) + 1  # (B,)
    changed[:, position] = np.where(target[:, position] != 0, new_tokens, 0)

    expected = logits(model, source, target)  # (B, T, V)
    changed_logits = logits(model, source, changed)
    np.testing.assert_array_equal(changed_logits[:, :position], expected[:, :position])
    # The property is not vacuous: the changed token changes its own logits.
    assert not np.array_equal(changed_logits[:, position], expected[:, position])


def generated_end_token(
    data, model: Seq2SeqTransformer, source: np.ndarray, max_length: int
) -> int:
    """An end token the model generates, at a drawn row and step of the
    uncached greedy output, so that rows end at different steps (or never)."""
    unconstrained = uncached_greedy(model, source, end_token_id=None, max_length=max_length)
    row = data.draw(st.integers(0, len(source) - 1), label="end token row")
    step = data.draw(st.integers(0, max_length - 1), label="end token step")
    return int(unconstrained[row, step])


@property_settings(max_examples=6)
@given(data=st.data())
def test_cached_greedy_equals_the_uncached_recompute_reference(data):
    config = data.draw(model_configs(), label="config")
    model = build_random_model(config)
    source = data.draw(
        padded_ids(config["source_vocabulary_size"], data.draw(st.integers(1, 4))),
        label="source",
    )
    max_length = data.draw(st.integers(1, MAX_TOKENS), label="max_length")
    end_token_id = generated_end_token(data, model, source, max_length)

    expected = uncached_greedy(model, source, end_token_id=end_token_id, max_length=max_length)
    tokens, _ = greedy_search(
        model, source, start_token_id=START, end_token_id=end_token_id, max_length=max_length
    )
    np.testing.assert_array_equal(np.asarray(tokens), expected)


@property_settings(max_examples=4)
@given(data=st.data())
def test_each_row_decodes_alone_as_in_the_batch(data):
    config = data.draw(model_configs(), label="config")
    model = build_random_model(config)
    source = data.draw(
        padded_ids(config["source_vocabulary_size"], data.draw(st.integers(2, 4))),
        label="source",
    )
    max_length = data.draw(st.integers(2, MAX_TOKENS), label="max_length")
    search_settings = {
        "start_token_id": START,
        "end_token_id": generated_end_token(data, model, source, max_length),
        "max_length": max_length,
    }
    batch, batch_scores = greedy_search(model, source, **search_settings)  # (B, T), (B,)
    batch = np.asarray(batch)
    # Alone: each row without the batch's padding, as a client would send it.
    alone = [greedy_search(model, row[row != 0][None], **search_settings) for row in source]
    alone_tokens = [np.asarray(tokens)[0] for tokens, _ in alone]
    width = max(len(row) for row in [*batch, *alone_tokens])
    np.testing.assert_array_equal(pad_rows(batch, width), pad_rows(alone_tokens, width))
    alone_scores = np.concatenate([np.asarray(scores) for _, scores in alone])  # (B,)
    np.testing.assert_allclose(np.asarray(batch_scores), alone_scores, rtol=1e-4, atol=1e-4)


@st.composite
def encoder_inputs(draw, vocabulary_size: int, batch_size: int):
    """int32 (B, S): the encoder input of training, ids then [END], 0-padded."""
    ids = draw(padded_ids(vocabulary_size, batch_size, max_tokens=MAX_TOKENS - 1))
    rows = [list(row[row != 0]) + [END_ID] for row in ids]
    return pad_rows(rows, max(len(row) for row in rows))


def relabel_as_end_token(model: Seq2SeqTransformer, token_id: int) -> None:
    """Swaps the target ids `token_id` and `END_ID` in the decoder embedding
    and the output projection, so that the model generates [END] where it
    generated `token_id` (a random model rarely generates id 3 itself)."""
    permutation = np.arange(model.target_vocabulary_size)  # (V,)
    permutation[[token_id, END_ID]] = [END_ID, token_id]
    embeddings = model.decoder_embedding.embeddings  # (V, D)
    embeddings.assign(embeddings.numpy()[permutation])
    if not model.tie_embeddings:
        logits_layer = model.output_layers[-1]  # the Dense "logits"
        logits_layer.kernel.assign(logits_layer.kernel.numpy()[:, permutation])  # (D, V)
        logits_layer.bias.assign(logits_layer.bias.numpy()[permutation])  # (V,)


def fake_vocabulary(size: int) -> list[str]:
    """`size` tokens: the reserved ones, then placeholders (`translate_ids`
    never reads them; the export only checks the sizes)."""
    return RESERVED_TOKENS + [f"token{index}" for index in range(len(RESERVED_TOKENS), size)]


@pytest.mark.slow
@property_settings(max_examples=3)
@given(data=st.data())
def test_keras_saved_model_and_tflite_decode_the_same_tokens(data):
    config = data.draw(model_configs(), label="config")
    model = build_random_model(config)
    source = data.draw(
        encoder_inputs(config["source_vocabulary_size"], data.draw(st.integers(2, 3))),
        label="source",
    )  # (B, S)
    max_output_length = data.draw(st.integers(4, MAX_TOKENS), label="max_output_length")
    lengths = {"max_input_length": source.shape[1], "max_output_length": max_output_length}

    def keras_greedy():
        tokens, scores = greedy_search(
            model, source, start_token_id=START_ID, end_token_id=END_ID,
            max_length=max_output_length,
        )  # the XLA program reads the weights, so it runs again after a relabeling
        return np.asarray(tokens), np.asarray(scores)  # (B, T), (B,)

    # [END] becomes a token generated at a drawn row and step, so that rows
    # end at different steps (or never).
    tokens, _ = keras_greedy()
    row = data.draw(st.integers(0, len(source) - 1), label="end token row")
    step = data.draw(st.integers(0, np.count_nonzero(tokens[row]) - 1), label="end token step")
    relabel_as_end_token(model, int(tokens[row, step]))
    keras_tokens, keras_scores = keras_greedy()
    with tempfile.TemporaryDirectory() as directory:
        saved_model_dir = export_saved_model(
            model,
            fake_vocabulary(config["source_vocabulary_size"]),
            fake_vocabulary(config["target_vocabulary_size"]),
            Path(directory, "saved_model"),
            text_signature=False,
            **lengths,
        )
        tflite_path = export_tflite(model, Path(directory, "model.tflite"), **lengths)
        translate_ids = tf.saved_model.load(saved_model_dir).signatures["translate_ids"]
        saved_model = translate_ids(encoder_token_ids=tf.constant(source))
        translate = Interpreter(model_path=tflite_path).get_signature_runner("translate")
        tflite = [translate(encoder_token_ids=row[None]) for row in source]
        tflite_tokens = np.concatenate([outputs["token_ids"] for outputs in tflite])  # (B, M)

    def to_max_length(tokens):
        tokens = np.asarray(tokens)
        return np.pad(tokens, ((0, 0), (0, max_output_length - tokens.shape[1])))

    np.testing.assert_array_equal(
        to_max_length(saved_model["token_ids"]), to_max_length(keras_tokens)
    )
    np.testing.assert_array_equal(tflite_tokens, to_max_length(keras_tokens))
    # Greedy scores: the total log-probability summed in each decoding loop.
    np.testing.assert_allclose(saved_model["scores"], keras_scores, rtol=1e-4, atol=1e-4)
