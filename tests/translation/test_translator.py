import json
import shutil

import keras
import numpy as np
import pytest

from keras_transformer.data import RESERVED_TOKENS, load_vocabulary, save_vocabulary
from keras_transformer.translation import Translator, evaluate
from keras_transformer.translation.run_directory import read_test_split

RUN_FILES = ["config.json", "source_vocabulary.txt", "target_vocabulary.txt", "model.keras"]


def copy_run(trained_run, tmp_path):
    run_dir, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_run_directory_holds_everything_translate_needs(trained_run):
    run_dir, translator = trained_run
    for name in RUN_FILES + ["test.tsv"]:
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["direction"] == "fr-en"
    for side in ("source", "target"):
        vocabulary = load_vocabulary(run_dir / f"{side}_vocabulary.txt")
        assert config[f"{side}_vocabulary_size"] == len(vocabulary)
    assert config["source_vocabulary_size"] <= 300
    assert config["hidden_dim"] == 32 and config["epochs"] == 1
    assert len(read_test_split(run_dir / "test.tsv")) == 30  # 10% of 300 distinct sources
    checkpoint = keras.saving.load_model(run_dir / "checkpoints" / "epoch_001.keras")
    assert checkpoint.count_params() == translator.model.count_params()
    assert list((run_dir / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((run_dir / "logs" / "validation").glob("events.out.tfevents.*"))
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 0)  # kept, to continue the run
    assert (run_dir / "checkpoints" / "best.keras").is_file()
    assert not list(run_dir.glob(".*"))  # no temporary files left


def test_reloaded_translator_translates_like_the_trained_one(trained_run):
    run_dir, translator = trained_run
    reloaded = Translator.from_run_dir(run_dir)
    texts = ["Je suis étudiant.", "Nous aimons les chiens."]
    assert reloaded.translate(texts) == translator.translate(texts)
    assert reloaded.source_vocabulary == translator.source_vocabulary
    assert reloaded.source_vocabulary[:4] == RESERVED_TOKENS
    assert reloaded.config == translator.config
    assert reloaded.run_dir == run_dir


def test_translate_batches_keep_order_and_strip_whitespace(trained_run):
    _, translator = trained_run
    sources = [pair[0] for pair in read_test_split(trained_run[0] / "test.tsv")]
    texts = (sources * 3)[:70] + ["", "   "]  # two batches, blanks last
    translations = translator.translate(texts, beam_size=1)
    assert len(translations) == 72 and translations[-2:] == ["", ""]
    assert all(isinstance(t, str) and t for t in translations[:-2])
    for row in (0, 5, 69):
        assert translator.translate([f"  {texts[row]}\n"], beam_size=1) == [translations[row]]
    assert translator.translate([]) == []


def test_translate_rejects_a_bare_string(trained_run):
    with pytest.raises(ValueError, match="list of sentences"):
        trained_run[1].translate("Je suis étudiant.")


def test_cross_attention_shapes_and_rows(trained_run):
    _, translator = trained_run
    source_tokens, target_tokens, weights = translator.cross_attention("Je suis étudiant.")
    assert source_tokens[-1] == "[END]"
    assert weights.shape == (1, 2, len(target_tokens), len(source_tokens))
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        translator.cross_attention("  ")


def test_evaluate_scores_the_saved_test_split(trained_run):
    run_dir, translator = trained_run
    evaluation = evaluate(run_dir, beam_size=1)
    assert len(evaluation.hypotheses) == len(evaluation.references) == 30
    for value in (evaluation.bleu, evaluation.bleu_lowercase, evaluation.chrf):
        assert 0.0 <= value <= 100.0
    assert evaluation.bleu_lowercase >= evaluation.bleu - 1e-9
    assert evaluate(translator, beam_size=1).hypotheses == evaluation.hypotheses


def test_missing_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'.*nowhere' does not exist"):
        Translator.from_run_dir(tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["model.keras", "target_vocabulary.txt"])
def test_incomplete_run_directory_names_the_missing_files(trained_run, tmp_path, missing):
    run_dir = copy_run(trained_run, tmp_path)
    (run_dir / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"incomplete.*missing \['{missing}'\]"):
        Translator.from_run_dir(run_dir)


def test_vocabulary_size_mismatch_is_reported(trained_run, tmp_path):
    run_dir = copy_run(trained_run, tmp_path)
    vocabulary = load_vocabulary(run_dir / "target_vocabulary.txt")
    save_vocabulary(vocabulary + ["extra"], run_dir / "target_vocabulary.txt")
    message = r"target vocabulary sizes of .* disagree: target_vocabulary\.txt has \d+ tokens"
    with pytest.raises(ValueError, match=message):
        Translator.from_run_dir(run_dir)


def test_unknown_config_key_in_the_run_directory(trained_run, tmp_path):
    run_dir = copy_run(trained_run, tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "colour": "blue"}))
    with pytest.raises(ValueError, match=r"unknown config keys \['colour'\]"):
        Translator.from_run_dir(run_dir)
