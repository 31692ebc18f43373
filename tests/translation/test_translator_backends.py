"""The Translator's decoding backends: the XLA `generate` and the exported LiteRT loop."""

import logging
import shutil
import sys

import keras
import numpy as np
import pytest

from keras_transformer import build_seq2seq_transformer, cli
from keras_transformer.optional import MissingExtraError
from keras_transformer.training import dtype_policy_scope
from keras_transformer.translation import Translator
from keras_transformer.translation.litert_loop import CACHE_DIR
from keras_transformer.translation.run_directory import load_run, read_test_split
from keras_transformer.translation.translator import LITERT_MAX_SENTENCES

pytest.importorskip("ai_edge_litert")
pytestmark = pytest.mark.tensorflow_only


@pytest.fixture(scope="module")
def run_copy(trained_run, tmp_path_factory):
    """A copy of the trained run with random weights of a larger scale: the
    one-epoch model says "You You ..." to every sentence, which would not
    tell two decoders apart. Its LiteRT cache starts empty."""
    copy = tmp_path_factory.mktemp("backends") / "run"
    shutil.copytree(trained_run[0], copy, ignore=shutil.ignore_patterns(CACHE_DIR))
    model = keras.saving.load_model(copy / "model.keras")
    keras.utils.set_random_seed(7)
    for weight in model.weights:
        weight.assign(np.random.normal(0.0, 0.5, weight.shape).astype("float32"))
    model.save(copy / "model.keras")
    return copy


@pytest.fixture(scope="module")
def sources(trained_run):
    return [source for source, _ in read_test_split(trained_run[0] / "test.tsv")]


@pytest.mark.parametrize("beam_size", [1, 2])
def test_litert_translates_every_sentence_as_xla_does(run_copy, sources, beam_size):
    xla = Translator.from_run_dir(run_copy, backend="xla")
    litert = Translator.from_run_dir(run_copy, backend="litert")
    expected = xla.translate(sources, beam_size=beam_size)
    assert len(set(expected)) > 5  # the sentences do not all translate alike
    assert litert.translate(sources, beam_size=beam_size) == expected
    one_by_one = [litert.translate([source], beam_size=beam_size)[0] for source in sources[:5]]
    assert one_by_one == expected[:5]


def test_auto_takes_litert_for_small_requests_only(run_copy, sources, caplog):
    translator = Translator.from_run_dir(run_copy)
    assert translator.choose_backend(1) == "litert"
    assert translator.choose_backend(LITERT_MAX_SENTENCES) == "litert"
    assert translator.choose_backend(LITERT_MAX_SENTENCES + 1) == "xla"
    with caplog.at_level(logging.INFO):
        translator.translate(sources[:1], beam_size=1)
        translator.translate(sources[:3], beam_size=1)
    assert "1 sentences with the litert backend (greedy)" in caplog.text
    assert "3 sentences with the xla backend (greedy)" in caplog.text
    assert Translator.from_run_dir(run_copy, backend="xla").choose_backend(1) == "xla"


def test_auto_falls_back_to_xla_without_litert(run_copy, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    assert Translator.from_run_dir(run_copy).choose_backend(1) == "xla"
    with pytest.raises(MissingExtraError, match=r"\[export\]"):
        Translator.from_run_dir(run_copy, backend="litert")


def test_the_export_is_cached_in_the_run_directory_and_keyed_by_the_weights(
    run_copy, sources
):
    first = Translator.from_run_dir(run_copy, backend="litert")
    first.translate(sources[:1], beam_size=1)
    (cached,) = (run_copy / CACHE_DIR).glob("translate_greedy_*.tflite")
    written = cached.stat().st_mtime_ns
    second = Translator.from_run_dir(run_copy, backend="litert")
    assert second.translate(sources[:1], beam_size=1) == first.translate(sources[:1], 1)
    assert cached.stat().st_mtime_ns == written  # read back, not exported again

    changed = Translator.from_run_dir(run_copy, backend="litert")
    weight = changed.model.decoder.weights[0]
    weight.assign(weight.numpy() + 0.5)
    changed.translate(sources[:1], beam_size=1)
    assert len(list((run_copy / CACHE_DIR).glob("translate_greedy_*.tflite"))) == 2


def test_unknown_backend_is_refused(run_copy):
    with pytest.raises(ValueError, match=r"`backend` must be one of .*Received: backend='tpu'"):
        Translator.from_run_dir(run_copy, backend="tpu")


def test_cli_backend_flag_and_verbose_choice(run_copy, capsys):
    text = "Je suis étudiant."
    assert cli.main(["translate", "--run-dir", str(run_copy), "--backend", "xla", text]) == 0
    expected = capsys.readouterr().out
    code = cli.main(
        ["translate", "--verbose", "--run-dir", str(run_copy), "--beam-size", "1", text]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == Translator.from_run_dir(run_copy, "xla").translate([text], 1)[0] + "\n"
    assert expected.strip()
    assert "decoding 1 sentences with the litert backend (--backend auto)" in captured.err


def test_a_bfloat16_model_decodes_with_xla_and_refuses_the_float32_loop(run_copy, sources):
    run = load_run(run_copy)
    with dtype_policy_scope("mixed_bfloat16"):
        model = build_seq2seq_transformer(
            run.config.source_vocabulary_size, run.config.target_vocabulary_size,
            **run.config.model_kwargs(),
        )
    model.set_weights(run.model.get_weights())
    vocabularies = (run.source_vocabulary, run.target_vocabulary)
    translator = Translator(model, run.config, *vocabularies, direction=run.direction)
    assert translator.choose_backend(1) == "xla"
    assert len(translator.translate(sources[:1], beam_size=1)) == 1
    with pytest.raises(ValueError, match=r"computes in bfloat16 \(a mixed precision "
                       r"policy\).*Use backend='xla'"):
        Translator(model, run.config, *vocabularies, direction=run.direction, backend="litert")


@pytest.mark.parametrize("num_threads", [0, -1, 1.5, True])
def test_litert_loop_refuses_a_bad_thread_count_before_exporting(run_copy, num_threads):
    from keras_transformer.translation.litert_loop import LiteRTLoop

    model = load_run(run_copy).model
    with pytest.raises(ValueError, match=r"`num_threads` must be a positive integer.*Received"):
        LiteRTLoop(model, decoding="greedy", beam_size=1, length_penalty=0.6,
                   start_token_id=2, end_token_id=3, max_length=8, num_threads=num_threads)
