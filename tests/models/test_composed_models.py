"""Models composed by hand decode exactly as `model(...)` says, or are refused.

Each `Seq2SeqTransformer` below is built from parts as a user would compose
them. Greedy search, beam search with one beam and the decoding loops of the
exported .tflite and SavedModel must all give the tokens of the uncached
reference: the argmax of `model(...)` over the whole prefix, step by step.
A plain `keras.Model` of the same layers is refused with a clear message.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_transformer.data import END_ID, RESERVED_TOKENS, START_ID
from keras_transformer.decoding import beam_search, greedy_search
from keras_transformer.export import export_saved_model, export_tflite
from keras_transformer.layers import (
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
)
from keras_transformer.models import DECODER_INPUT, ENCODER_INPUT, Seq2SeqTransformer
from keras_transformer.translation import Translator, TranslationConfig

SOURCE_VOCABULARY, TARGET_VOCABULARY, D = 29, 31, 16
SOURCE_LENGTH, MAX_LENGTH = 7, 8
SEARCH = {"start_token_id": START_ID, "end_token_id": END_ID, "max_length": MAX_LENGTH}


def _embedding(vocabulary_size, position_encoding="sinusoidal", name=None):
    return TokenAndPositionEmbedding(vocabulary_size, 24, D, position_encoding, name=name)


def _stack(cls, num_layers, normalize_first=False, name=None):
    return cls(num_layers, num_heads=2, intermediate_dim=32, dropout=0.0,
               normalize_first=normalize_first, name=name)


def _projection_head():
    """The new user's head: their own LayerNorm and Dense before the logits Dense."""
    return dict(
        output_layers=[
            keras.layers.LayerNormalization(),
            keras.layers.Dense(D, activation="gelu"),
            keras.layers.Dense(TARGET_VOCABULARY, name="logits"),
        ],
        tie_embeddings=False,
    )


def _parts(kind):
    """The keyword arguments of `Seq2SeqTransformer` for one composition."""
    normalize_first = kind == "pre_norm"
    positions = "learned" if kind == "learned_positions" else "sinusoidal"
    parts = dict(
        encoder_embedding=_embedding(SOURCE_VOCABULARY, positions, "source_embedding"),
        encoder=_stack(TransformerEncoder, 3 if kind == "different_depths" else 2,
                       normalize_first),
        decoder_embedding=_embedding(TARGET_VOCABULARY, positions, "target_embedding"),
        decoder=_stack(TransformerDecoder, 1 if kind == "different_depths" else 2,
                       normalize_first),
    )
    if kind == "final_norm_and_projection_head":
        parts.update(_projection_head())
    if kind == "untied_dense_head":
        parts.update(output_layers=[keras.layers.Dense(TARGET_VOCABULARY)], tie_embeddings=False)
    if kind == "learned_positions":
        # A norm with drawn scale and offset, then the tied table.
        parts.update(output_layers=[keras.layers.LayerNormalization(
            gamma_initializer="random_normal", beta_initializer="random_normal"
        )])
    return parts


KINDS = [
    "final_norm_and_projection_head",
    "untied_dense_head",
    "pre_norm",
    "learned_positions",
    "different_depths",
]


def _model(kind):
    keras.utils.set_random_seed(KINDS.index(kind))
    model = Seq2SeqTransformer(**_parts(kind))
    # Sharper logits, so that the next token depends on the source and prefix.
    for weight in model.weights:
        if weight.path.endswith("attention_output/kernel"):
            weight.assign(weight.numpy() * 3.0)
    return model


def _source():
    rng = np.random.default_rng(0)
    source = rng.integers(4, SOURCE_VOCABULARY, (3, SOURCE_LENGTH)).astype("int32")
    source[:, -1] = END_ID
    source[1, 4:] = 0  # a shorter row
    return source


def _reference_tokens(model, source):
    """Step-by-step argmax of `model(...)` on the whole prefix, padding never chosen."""
    prefix = np.full((len(source), 1), START_ID, "int32")
    finished = np.zeros(len(source), bool)
    for _ in range(MAX_LENGTH):
        logits = np.array(model({ENCODER_INPUT: source, DECODER_INPUT: prefix}))[:, -1]
        logits[:, 0] = -np.inf
        tokens = np.where(finished, 0, logits.argmax(axis=-1)).astype("int32")
        finished |= tokens == END_ID
        prefix = np.concatenate([prefix, tokens[:, None]], axis=1)
        if finished.all():
            break
    return prefix[:, 1:]


@pytest.fixture(scope="module", params=KINDS)
def composed(request):
    model = _model(request.param)
    source = _source()
    return model, source, _reference_tokens(model, source)


def test_greedy_and_one_beam_equal_the_step_by_step_argmax(composed):
    model, source, expected = composed
    tokens, _ = greedy_search(model, source, **SEARCH)
    np.testing.assert_array_equal(tokens, expected)
    tokens, _ = beam_search(model, source, beam_size=1, **SEARCH)
    np.testing.assert_array_equal(tokens, expected)
    tokens, _ = model.generate(source, **SEARCH)
    np.testing.assert_array_equal(tokens, expected)


def test_cached_decode_steps_give_the_logits_of_the_forward_pass(composed):
    model, source, expected = composed
    prefix = np.pad(expected, ((0, 0), (1, 0)), constant_values=START_ID)[:, :-1]  # (B, T)
    full = np.asarray(model({ENCODER_INPUT: source, DECODER_INPUT: prefix}))  # (B, T, V)
    encoder_outputs, encoder_padding_mask = model.encode(source)
    cross_attention_cache = model.compute_cross_attention_cache(encoder_outputs)
    cache = model.init_self_attention_cache(len(source), prefix.shape[1])
    for index in range(prefix.shape[1]):
        logits, cache = model.decode_step(prefix[:, index : index + 1], index, cache,
                                          cross_attention_cache, encoder_padding_mask)
        real = prefix[:, index] != 0  # rows that ended earlier feed padding
        np.testing.assert_allclose(np.asarray(logits)[real, 0], full[real, index], atol=1e-4)


def test_the_exported_loops_equal_the_step_by_step_argmax(composed, tmp_path):
    model, source, expected = composed
    lengths = {"max_input_length": SOURCE_LENGTH, "max_output_length": MAX_LENGTH}
    path = export_tflite(model, tmp_path / "model.tflite", batch_size=len(source), **lengths)
    translate = Interpreter(model_path=path).get_signature_runner("translate")
    outputs = translate(encoder_token_ids=source)
    np.testing.assert_array_equal(outputs["token_ids"][:, : outputs["num_steps"]], expected)

    vocabularies = [RESERVED_TOKENS + [f"w{i}" for i in range(size - len(RESERVED_TOKENS))]
                    for size in (SOURCE_VOCABULARY, TARGET_VOCABULARY)]
    export_saved_model(model, *vocabularies, tmp_path / "saved_model", text_signature=False,
                       **lengths)
    translate_ids = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["translate_ids"]
    tokens = translate_ids(encoder_token_ids=tf.constant(source))["token_ids"].numpy()
    np.testing.assert_array_equal(tokens, expected)


def test_save_and_reload_keeps_the_parts_and_the_outputs(composed, tmp_path):
    model, source, expected = composed
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded, Seq2SeqTransformer)
    assert [type(layer) for layer in reloaded.output_layers] == [
        type(layer) for layer in model.output_layers
    ]
    inputs = {ENCODER_INPUT: source, DECODER_INPUT: np.pad(expected, ((0, 0), (1, 0)))}
    np.testing.assert_allclose(np.asarray(reloaded(inputs)), np.asarray(model(inputs)), atol=1e-6)
    np.testing.assert_array_equal(greedy_search(reloaded, source, **SEARCH)[0], expected)


def test_one_embedding_can_serve_source_and_target():
    embedding = _embedding(SOURCE_VOCABULARY)
    model = Seq2SeqTransformer(embedding, _stack(TransformerEncoder, 1), embedding,
                               _stack(TransformerDecoder, 1))
    source = _source()
    np.testing.assert_array_equal(greedy_search(model, source, **SEARCH)[0],
                                  _reference_tokens(model, source))
    reloaded = Seq2SeqTransformer.from_config(model.get_config())
    assert reloaded.decoder_embedding is reloaded.encoder_embedding


def _plain_model():
    """A `keras.Model` of the same kind of layers that `Seq2SeqTransformer` did not build."""
    parts = _parts("final_norm_and_projection_head")
    encoder_ids = keras.Input((None,), dtype="int32", name=ENCODER_INPUT)
    decoder_ids = keras.Input((None,), dtype="int32", name=DECODER_INPUT)
    encoded = parts["encoder"](parts["encoder_embedding"](encoder_ids))
    x = parts["decoder"](parts["decoder_embedding"](decoder_ids), encoded)
    for layer in parts["output_layers"]:
        x = layer(x)
    return keras.Model({ENCODER_INPUT: encoder_ids, DECODER_INPUT: decoder_ids}, x)


@pytest.mark.parametrize(
    "use, purpose",
    [
        (lambda model, tmp_path: greedy_search(model, _source(), **SEARCH), "Decoding"),
        (lambda model, tmp_path: export_tflite(model, tmp_path / "m.tflite"), "Export"),
        (lambda model, tmp_path: export_saved_model(model, [], [], tmp_path / "m"), "Export"),
        (lambda model, tmp_path: Translator(model, TranslationConfig(), [], []), "Translator"),
    ],
    ids=["greedy_search", "export_tflite", "export_saved_model", "Translator"],
)
def test_a_plain_keras_model_of_the_same_layers_is_refused(use, purpose, tmp_path):
    with pytest.raises(ValueError, match=rf"^{purpose} needs a `keras_transformer.models."
                       r"Seq2SeqTransformer`. Received Functional .*Seq2SeqTransformer\("
                       r"encoder_embedding=\.\.\."):
        use(_plain_model(), tmp_path)


@pytest.mark.parametrize(
    "parts, message",
    [
        ({"output_layers": [keras.layers.Conv1D(TARGET_VOCABULARY, 3)]},
         r"`output_layers\[0\]` must act on each position alone.*Received Conv1D"),
        ({"output_layers": [keras.layers.LayerNormalization(axis=1)]},
         r"Received LayerNormalization .* with axis=1"),
        ({"tie_embeddings": False}, "must end with a layer giving the logits"),
        ({"output_layers": [keras.layers.Dense(7)], "tie_embeddings": False},
         "The head gives 7 logits per position, but the target vocabulary has 31 ids"),
        ({"decoder": keras.layers.Dense(D)}, r"`decoder` must be a `keras_transformer.layers"
         r".TransformerDecoder`.*type Dense"),
    ],
)
def test_parts_that_cannot_decode_exactly_are_refused(parts, message):
    with pytest.raises(ValueError, match=message):
        Seq2SeqTransformer(**{**_parts("pre_norm"), **parts})
