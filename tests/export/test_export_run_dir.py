"""`export_from_run_dir` on a run directory in the layout `keras-transformer
train` writes."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_transformer.export import export_from_run_dir


def test_saved_model_from_run_dir_translates_its_test_set(translator, tmp_path, bleu_score):
    output = export_from_run_dir(translator.run_dir, "saved_model", tmp_path / "translator" / "1")
    serving = tf.saved_model.load(output).signatures["serving_default"]
    sources, references = zip(*translator.test_pairs[:30])
    outputs = serving(text=tf.constant(sources))
    translations = [text.decode("utf-8") for text in outputs["translations"].numpy()]
    assert bleu_score(translations, list(references)) > 50


def test_tflite_from_run_dir_uses_the_config_lengths(translator, tmp_path):
    output = export_from_run_dir(
        translator.run_dir, "tflite", tmp_path / "translator.tflite", quantization="float16"
    )
    translate = Interpreter(model_path=output).get_signature_runner("translate")
    max_length = json.loads((translator.run_dir / "config.json").read_text())["max_sequence_length"]
    source, _ = translator.test_pairs[0]  # a sentence of the kind the tiny model learned
    ids = translator.encoder_token_ids([source], length=max_length)
    tokens = translate(encoder_token_ids=ids)["token_ids"]
    assert tokens.shape == (1, max_length) and np.any(tokens == 3)


def test_missing_files_are_named(translator, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(translator.run_dir / "config.json", run_dir)
    with pytest.raises(FileNotFoundError) as error:
        export_from_run_dir(run_dir, "saved_model", tmp_path / "out")
    message = str(error.value)
    assert all(
        name in message
        for name in ("source_vocabulary.txt", "target_vocabulary.txt", "model.keras")
    )
    assert "config.json, " not in message.split("missing")[1].split(".")[0]
    with pytest.raises(FileNotFoundError, match="nowhere' does not exist. Expected a directory"):
        export_from_run_dir(tmp_path / "nowhere", "saved_model", tmp_path / "out")


@pytest.mark.parametrize(
    "format, quantization, match",
    [("onnx", "none", "format"), ("saved_model", "float16", "tflite format only"),
     ("tflite", "int4", "quantization")],
)
def test_rejects_bad_arguments(translator, tmp_path, format, quantization, match):
    with pytest.raises(ValueError, match=match):
        export_from_run_dir(translator.run_dir, format, tmp_path / "out", quantization=quantization)
