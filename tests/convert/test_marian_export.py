"""The imported tiny Marian model exported whole: SavedModel (strings in and out)
and builtins-only TFLite, each against transformers' `generate`."""

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from marian_reference import first_rows

from keras_transformer.data import detokenize
from keras_transformer.export import export_from_run_dir, export_saved_model, export_tflite

MAX_INPUT_LENGTH = 40


def encoder_rows(reference, length):
    """(B, length) encoder ids of MarianTokenizer's ids, renumbered, 0-padded."""
    rows = reference.ours("source_ids")
    ids = np.zeros((len(rows), length), "int32")
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
    return ids


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_saved_model_gives_generate_ids_and_texts(
    marian_translator, reference, tmp_path, decoding
):
    beam = {"beam_size": reference.values["beam_size"], "length_penalty": 0.0}
    output = export_saved_model(
        marian_translator.model,
        marian_translator.source_tokenizer.proto,
        marian_translator.target_tokenizer.proto,
        tmp_path / "translator" / "1",
        tokenizer="sentencepiece",
        decoding=decoding,
        max_input_length=MAX_INPUT_LENGTH,
        max_output_length=reference.max_length,
        **beam,
    )
    loaded = tf.saved_model.load(output)
    expected = reference.ours(f"{decoding}_ids")
    outputs = loaded.signatures["translate_ids"](
        encoder_token_ids=tf.constant(encoder_rows(reference, MAX_INPUT_LENGTH))
    )
    assert first_rows(outputs["token_ids"].numpy()) == expected
    # Strings in, strings out: the in-graph tokenizer gives MarianTokenizer's
    # ids, or the texts would differ.
    texts = loaded.signatures["serving_default"](text=tf.constant(reference.values["sentences"]))
    translations = [text.decode("utf-8") for text in texts["translations"].numpy()]
    assert translations == detokenize(marian_translator.target_tokenizer, expected)
    if decoding == "greedy":
        assert translations == reference.values["greedy_texts"]


def test_run_directory_exports_a_saved_model(marian_run_dir, tmp_path):
    output = export_from_run_dir(marian_run_dir, "saved_model", tmp_path / "served" / "1")
    serving = tf.saved_model.load(output).signatures["serving_default"]
    outputs = serving(text=tf.constant(["Je suis étudiant.", ""]))
    assert outputs["translations"].numpy()[1] == b""


@pytest.fixture(scope="module")
def tflite_runners(marian_translator, reference, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tflite")
    runners = {}
    for quantization in ("none", "dynamic_range"):
        path = export_tflite(
            marian_translator.model,
            directory / f"{quantization}.tflite",
            quantization=quantization,
            max_input_length=MAX_INPUT_LENGTH,
            max_output_length=reference.max_length,
        )
        runners[quantization] = Interpreter(model_path=path).get_signature_runner("translate")
    return runners


def tflite_greedy(runner, reference):
    rows = []
    for ids in encoder_rows(reference, MAX_INPUT_LENGTH):
        rows += first_rows(runner(encoder_token_ids=ids[None])["token_ids"])
    return rows


def test_tflite_float32_gives_generate_ids(tflite_runners, reference):
    assert tflite_greedy(tflite_runners["none"], reference) == reference.ours("greedy_ids")


def test_tflite_int8_agreement_with_generate(tflite_runners, reference):
    """Dynamic-range int8 weights change the logits a little: reported, and
    only the first tokens are required to agree."""
    rows = tflite_greedy(tflite_runners["dynamic_range"], reference)
    expected = reference.ours("greedy_ids")
    agreement = np.mean([a == b for row, ref in zip(rows, expected) for a, b in zip(row, ref)])
    print(f"int8 greedy token agreement with generate: {agreement:.3f}; "
          f"identical rows {sum(r == e for r, e in zip(rows, expected))}/{len(rows)}")
    assert [row[0] for row in rows] == [row[0] for row in expected]
