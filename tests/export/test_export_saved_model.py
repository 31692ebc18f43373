"""The SavedModel export: parity with the Python decoding API, a clean-process
load, `saved_model_cli`, and a table of bad serving inputs."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.data import END_ID, START_ID, UNK_ID, detokenize
from keras_transformer.decoding import beam_search, greedy_search
from keras_transformer.export import export_saved_model

from clean_process import run_in_clean_process

MAX_INPUT_LENGTH = 16
MAX_OUTPUT_LENGTH = 24


@pytest.fixture(scope="module")
def saved_model_dir(translator, tmp_path_factory):
    return export_saved_model(
        translator.model,
        translator.source_vocabulary,
        translator.target_vocabulary,
        tmp_path_factory.mktemp("serving") / "translator" / "1",
        max_input_length=MAX_INPUT_LENGTH,
        max_output_length=MAX_OUTPUT_LENGTH,
    )


@pytest.fixture(scope="module")
def serving(saved_model_dir):
    return tf.saved_model.load(saved_model_dir).signatures


def _translate(serving, texts: list[str]) -> tuple[list[str], np.ndarray]:
    outputs = serving["serving_default"](text=tf.constant(texts, tf.string))
    return [text.decode("utf-8") for text in outputs["translations"].numpy()], outputs["scores"]


def _python_translations(translator, sources, decode=greedy_search, **settings):
    ids = translator.encoder_token_ids(sources, max_input_length=MAX_INPUT_LENGTH)
    tokens, _ = decode(
        translator.model, ids, start_token_id=START_ID, end_token_id=END_ID,
        max_length=MAX_OUTPUT_LENGTH, **settings,
    )
    return ids, tokens.numpy(), detokenize(translator.target_tokenizer, tokens.numpy().tolist())


def test_translations_equal_python_greedy_search(translator, serving):
    sources = [source for source, _ in translator.test_pairs]
    ids, tokens, expected = _python_translations(translator, sources)
    translations, scores = _translate(serving, sources)
    assert translations == expected
    _, python_scores = greedy_search(translator.model, ids, start_token_id=START_ID,
                                     end_token_id=END_ID, max_length=MAX_OUTPUT_LENGTH)
    np.testing.assert_allclose(scores.numpy(), python_scores.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(scores.numpy() < 0)
    outputs = serving["translate_ids"](encoder_token_ids=tf.constant(ids))
    np.testing.assert_array_equal(outputs["token_ids"].numpy(), tokens)
    np.testing.assert_allclose(outputs["scores"].numpy(), scores.numpy(), rtol=1e-5)


def _xla_compiled_functions(saved_model_dir) -> int:
    """How many functions of the SavedModel's graph XLA must compile."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    library = saved_model.meta_graphs[0].graph_def.library
    return sum(
        function.attr["_XlaMustCompile"].b for function in library.function
    )


def test_the_decoding_loop_is_xla_compiled_unless_turned_off(translator, saved_model_dir,
                                                            serving, tmp_path):
    assert _xla_compiled_functions(saved_model_dir) >= 1
    plain_dir = export_saved_model(
        translator.model, translator.source_vocabulary, translator.target_vocabulary,
        tmp_path / "plain", jit_compile=False,
        max_input_length=MAX_INPUT_LENGTH, max_output_length=MAX_OUTPUT_LENGTH,
    )
    assert _xla_compiled_functions(plain_dir) == 0
    plain = tf.saved_model.load(plain_dir).signatures
    sources = [source for source, _ in translator.test_pairs[:30]] + [""]
    translations, scores = _translate(serving, sources)
    plain_translations, plain_scores = _translate(plain, sources)
    assert translations == plain_translations
    np.testing.assert_allclose(scores.numpy(), plain_scores.numpy(), rtol=1e-5, atol=1e-5)


BAD_INPUTS = {
    "empty": "",
    "whitespace only": " \t\n  ",
    "very long": "Je mange une pomme rouge. " * 200,
    "cyrillic": "Привет, как дела?",
    "chinese": "我是学生。",
    "emoji and symbols": "🙂 ### ??? ...",
    "reserved token text": "[END] [START] [PAD]",
    "invalid utf-8": b"caf\xe9 au lait",
    "normal": "Je suis étudiant.",
}


def test_bad_inputs_each_give_a_string(serving):
    texts = list(BAD_INPUTS.values())
    translations, scores = _translate(serving, texts)
    assert len(translations) == len(texts)
    assert all(isinstance(text, str) for text in translations)
    results = dict(zip(BAD_INPUTS, translations))
    assert results["empty"] == results["whitespace only"] == ""
    assert scores.numpy()[0] == 0.0
    # Text in another script is all [UNK]: any string, even "", is a valid
    # answer (a tiny model often ends at once). A long input is cut, not dropped.
    assert results["very long"]
    assert np.all(np.isfinite(scores.numpy()))
    # A mixed batch gives each row what it gives alone.
    for text, translation in zip(texts, translations):
        assert _translate(serving, [text])[0] == [translation]


def test_whitespace_is_collapsed_and_long_inputs_truncated(translator, serving):
    assert _translate(serving, ["  Je   suis\t\tétudiant.\n "])[0] == _translate(
        serving, ["Je suis étudiant."]
    )[0]
    long_text = "Je mange une pomme rouge et " * 50
    _, _, expected = _python_translations(translator, [long_text])
    assert _translate(serving, [long_text])[0] == expected


def test_empty_batch(serving):
    translations, scores = _translate(serving, [])
    assert translations == [] and scores.shape == (0,)


def test_translate_ids_cleans_out_of_range_and_long_ids(translator, serving):
    vocabulary_size = len(translator.source_vocabulary)
    ids = translator.encoder_token_ids(["Je suis étudiant."])
    unknown = ids.copy()
    unknown[0, 0] = UNK_ID
    out_of_range = ids.copy()
    out_of_range[0, 0] = vocabulary_size + 7

    def token_ids(encoder_token_ids):
        outputs = serving["translate_ids"](encoder_token_ids=tf.constant(encoder_token_ids))
        return outputs["token_ids"].numpy()

    np.testing.assert_array_equal(token_ids(out_of_range), token_ids(unknown))
    long_ids = np.full((1, 3 * MAX_INPUT_LENGTH), 10, "int32")
    cut = np.full((1, MAX_INPUT_LENGTH), 10, "int32")
    cut[0, -1] = END_ID
    np.testing.assert_array_equal(token_ids(long_ids), token_ids(cut))


def test_loads_in_a_process_with_only_tensorflow_and_tensorflow_text(saved_model_dir):
    script = f"""
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
model = tf.saved_model.load({saved_model_dir!r})
outputs = model.signatures["serving_default"](text=tf.constant(["Je suis étudiant.", ""]))
print(json.dumps({{
    "translations": [t.decode("utf-8") for t in outputs["translations"].numpy()],
    "keras_transformer_imported": "keras_transformer" in sys.modules,
    "signatures": sorted(model.signatures),
}}))
"""
    report = run_in_clean_process(script)
    assert report["translations"][0] and report["translations"][1] == ""
    assert not report["keras_transformer_imported"]
    assert report["signatures"] == ["serving_default", "translate_ids"]


def test_saved_model_cli_runs_the_xla_loop(translator, tmp_path):
    # saved_model_cli loads every signature and registers no tensorflow-text
    # op, so it runs the ids-only export.
    path = export_saved_model(
        translator.model, translator.source_vocabulary, translator.target_vocabulary,
        tmp_path / "ids_only", text_signature=False,
        max_input_length=MAX_INPUT_LENGTH, max_output_length=MAX_OUTPUT_LENGTH,
    )
    assert _xla_compiled_functions(path) >= 1
    ids, tokens, _ = _python_translations(translator, ["Je suis étudiant."])
    np.save(tmp_path / "ids.npy", ids)
    output_dir = tmp_path / "outputs"
    subprocess.run(
        [str(Path(sys.executable).parent / "saved_model_cli"), "run", "--dir", path,
         "--tag_set", "serve", "--signature_def", "translate_ids",
         "--inputs", f"encoder_token_ids={tmp_path / 'ids.npy'}", "--outdir", str(output_dir)],
        capture_output=True, text=True, timeout=300, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    np.testing.assert_array_equal(np.load(output_dir / "token_ids.npy"), tokens)


def test_saved_model_cli_shows_both_signatures(saved_model_dir):
    cli = Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run(
        [str(cli), "show", "--all", "--dir", saved_model_dir],
        capture_output=True, text=True, timeout=300, check=True,
    )
    for expected in ("signature_def['serving_default']", "inputs['text']",
                     "outputs['translations']", "signature_def['translate_ids']",
                     "FastWordpieceTokenizeWithOffsets"):
        assert expected in result.stdout


def test_existing_output_is_not_replaced(translator, saved_model_dir):
    with pytest.raises(FileExistsError, match="overwrite"):
        export_saved_model(
            translator.model, translator.source_vocabulary, translator.target_vocabulary,
            saved_model_dir,
        )


@pytest.mark.slow
def test_beam_export_equals_python_beam_search(translator, tmp_path):
    path = export_saved_model(
        translator.model, translator.source_vocabulary, translator.target_vocabulary,
        tmp_path / "beam", decoding="beam", beam_size=3, length_penalty=0.6,
        max_input_length=MAX_INPUT_LENGTH, max_output_length=MAX_OUTPUT_LENGTH,
    )
    serving = tf.saved_model.load(path).signatures
    sources = [source for source, _ in translator.test_pairs[:20]]
    _, _, expected = _python_translations(
        translator, sources, decode=beam_search, beam_size=3, length_penalty=0.6
    )
    assert _translate(serving, sources)[0] == expected


def test_rejects_bad_settings(translator, tmp_path):
    arguments = (translator.model, translator.source_vocabulary, translator.target_vocabulary)
    with pytest.raises(ValueError, match="decoding"):
        export_saved_model(*arguments, tmp_path / "a", decoding="sampling")
    with pytest.raises(ValueError, match="target_vocabulary"):
        export_saved_model(
            translator.model, translator.source_vocabulary,
            translator.target_vocabulary + ["x"] * 5000, tmp_path / "b",
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_ids_only_export_has_no_tensorflow_text_ops(translator, tmp_path):
    path = export_saved_model(
        translator.model, translator.source_vocabulary, translator.target_vocabulary,
        tmp_path / "ids_only", text_signature=False,
        max_input_length=MAX_INPUT_LENGTH, max_output_length=MAX_OUTPUT_LENGTH,
    )
    script = f"""
import json
import numpy as np
import tensorflow as tf
model = tf.saved_model.load({path!r})
ids = tf.constant({translator.encoder_token_ids(["Je suis étudiant."]).tolist()})
print(json.dumps({{
    "signatures": sorted(model.signatures),
    "token_ids": model.signatures["serving_default"](encoder_token_ids=ids)[
        "token_ids"].numpy().tolist(),
}}))
"""
    report = run_in_clean_process(script)
    assert report["signatures"] == ["serving_default", "translate_ids"]
    _, tokens, _ = _python_translations(translator, ["Je suis étudiant."])
    assert report["token_ids"] == tokens.tolist()
