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


def encoder_rows(reference, length, name="source_ids"):
    """(B, length) encoder ids of MarianTokenizer's ids (or of the random
    sources with `name="random_encoder_ids"`), renumbered, 0-padded."""
    rows = reference.ours(name)
    if name == "random_encoder_ids":
        masks = reference.values["random_encoder_mask"]
        rows = [row[: sum(mask)] for row, mask in zip(rows, masks)]
    ids = np.zeros((len(rows), length), "int32")
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
    return ids


def search_name(decoding, reference):
    return "greedy" if decoding == "greedy" else f"beam_{reference.values['beam_size']}"


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
    outputs = loaded.signatures["translate_ids"](encoder_token_ids=tf.constant(
        encoder_rows(reference, MAX_INPUT_LENGTH, "random_encoder_ids")
    ))
    random_expected = reference.ours(f"random_{search_name(decoding, reference)}_ids")
    assert first_rows(outputs["token_ids"].numpy()) == random_expected
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
    beam = {"beam_size": reference.values["beam_size"], "length_penalty": 0.0}
    for quantization, decoding in (("none", "greedy"), ("none", "beam"),
                                   ("dynamic_range", "greedy")):
        path = export_tflite(
            marian_translator.model,
            directory / f"{quantization}_{decoding}.tflite",
            quantization=quantization,
            max_input_length=MAX_INPUT_LENGTH,
            max_output_length=reference.max_length,
            decoding=decoding,
            **beam,
        )
        runner = Interpreter(model_path=path).get_signature_runner("translate")
        runners[quantization, decoding] = runner
    return runners


def tflite_ids(runner, reference, name):
    """First rows of the .tflite's "translate" (batch 1) on each source."""
    rows = []
    for ids in encoder_rows(reference, MAX_INPUT_LENGTH, name):
        rows += first_rows(runner(encoder_token_ids=ids[None])["token_ids"])
    return rows


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_tflite_float32_gives_generate_ids(tflite_runners, reference, decoding):
    runner, search = tflite_runners["none", decoding], search_name(decoding, reference)
    assert tflite_ids(runner, reference, "source_ids") == reference.ours(f"{decoding}_ids")
    assert tflite_ids(runner, reference, "random_encoder_ids") == reference.ours(
        f"random_{search}_ids"
    )


def test_tflite_int8_agreement_with_generate(tflite_runners, reference):
    """Dynamic-range int8 weights change the logits a little: the agreement
    is printed, and only most first tokens are required to agree."""
    runner = tflite_runners["dynamic_range", "greedy"]
    rows = tflite_ids(runner, reference, "source_ids")
    rows += tflite_ids(runner, reference, "random_encoder_ids")
    expected = reference.ours("greedy_ids") + reference.ours("random_greedy_ids")
    tokens = [a == b for row, ref in zip(rows, expected) for a, b in zip(row, ref)]
    first = np.mean([row[0] == ref[0] for row, ref in zip(rows, expected)])
    identical = sum(row == ref for row, ref in zip(rows, expected))
    print(f"int8 greedy vs generate: {np.mean(tokens):.3f} of aligned tokens, "
          f"{first:.3f} of first tokens, {identical}/{len(rows)} identical rows")
    assert first >= 0.9
