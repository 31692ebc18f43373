import json

import keras
import numpy as np
import pytest

from keras_transformer.data import DataError, PAPER_EXAMPLE
from keras_transformer.training import precision
from keras_transformer.translation import TrainingDivergedError, Translator, load_splits, train


class Interrupt(Exception):
    pass


class InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Raises at the end of the first epoch, after the run's own callbacks saved it."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise Interrupt


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_an_interrupted_run_resumes_from_its_last_epoch(tiny_files, tmp_path):
    corpus, config = tiny_files
    run_dir = tmp_path / "run"
    first = RecordEpochs()
    with pytest.raises(Interrupt):
        train(str(config), run_dir, data=corpus, epochs=2, verbose=0,
              callbacks=[first, InterruptAfterFirstEpoch()])
    assert first.epochs == [0]
    assert (run_dir / "backup").is_dir()
    assert not (run_dir / "model.keras").exists()
    epoch_1 = keras.saving.load_model(run_dir / "checkpoints" / "epoch_001.keras")
    steps_per_epoch = int(epoch_1.optimizer.iterations)
    assert steps_per_epoch > 0
    vocabulary = (run_dir / "source_vocabulary.txt").read_text()

    second = RecordEpochs()
    translator = train(str(config), run_dir, data=corpus, epochs=2, verbose=0, callbacks=[second])
    assert second.epochs == [1]  # the epoch count continues
    assert int(translator.model.optimizer.iterations) == 2 * steps_per_epoch
    assert (run_dir / "checkpoints" / "epoch_002.keras").is_file()
    assert (run_dir / "model.keras").is_file()
    assert (run_dir / "source_vocabulary.txt").read_text() == vocabulary
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 2


def test_a_run_directory_of_another_config_is_not_resumed(trained_run, tiny_files):
    run_dir, _ = trained_run
    corpus, config = tiny_files
    changed = json_config(config, run_dir.parent, hidden_dim=16)
    with pytest.raises(ValueError, match="different hidden_dim.*new --output-dir"):
        train(changed, run_dir, data=corpus, verbose=0)


def json_config(config, directory, **changes):
    values = {**json.loads(config.read_text()), **changes}
    path = directory / "changed_config.json"
    path.write_text(json.dumps(values))
    return str(path)


def test_bad_arguments_fail_before_training(tiny_files, tmp_path):
    corpus, config = tiny_files
    with pytest.raises(DataError, match="No corpus found"):
        train(str(config), tmp_path / "a", data=tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="direction"):
        train(str(config), tmp_path / "b", data=corpus, direction="french")
    with pytest.raises(ValueError, match="embedded corpus is French-English"):
        train(str(config), tmp_path / "c", direction="de-en")
    with pytest.raises(ValueError, match="epochs"):
        train(str(config), tmp_path / "d", data=corpus, epochs=0)
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_embedded_splits_keep_the_paper_example_in_train():
    splits = load_splits(None, "fr-en", seed=1234)
    assert PAPER_EXAMPLE in splits["train"]
    assert len(splits["test"]) == 1000
    reversed_splits = load_splits(None, "en-fr", seed=1234)
    assert reversed_splits["test"][0] == splits["test"][0][::-1]


class PoisonWeights(keras.callbacks.Callback):
    """Makes the loss NaN from the third batch on."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 2:
            embeddings = self.model.decoder_embedding.embeddings
            embeddings.assign(embeddings * float("nan"))


def test_training_that_diverges_stops_with_a_clear_error(tiny_files, tmp_path):
    corpus, config = tiny_files
    with pytest.raises(TrainingDivergedError, match="NaN or infinite loss.*epoch 1.*not written"):
        train(str(config), tmp_path / "run", data=corpus, verbose=0, callbacks=[PoisonWeights()])
    assert not (tmp_path / "run" / "model.keras").exists()


def test_auto_precision_resolves_once_and_the_run_trains_saves_and_translates_under_it(
    tiny_files, tmp_path, monkeypatch
):
    corpus, tiny_config = tiny_files
    config = tmp_path / "config.json"
    values = json.loads(tiny_config.read_text())
    config.write_text(json.dumps({**values, "dtype_policy": "auto"}))
    run_dir = tmp_path / "run"
    monkeypatch.setattr(precision, "cpu_has_bfloat16_matmul", lambda: True)
    translator = train(str(config), run_dir, data=corpus, verbose=0)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert json.loads((run_dir / "config.json").read_text())["dtype_policy"] == "mixed_bfloat16"
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    assert model.parts_compute_dtype == "bfloat16"
    assert all(weight.dtype == "float32" for weight in model.weights)  # master weights
    ids = keras.ops.ones((2, 5), "int32")
    logits = model({"encoder_token_ids": ids, "decoder_token_ids": ids})
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    # The run translates and exports in float32, with the trained weights.
    assert translator.model.parts_compute_dtype == "float32"
    for trained, decoding in zip(model.weights, translator.model.weights, strict=True):
        np.testing.assert_array_equal(trained.numpy(), decoding.numpy())
    assert Translator.from_run_dir(run_dir).model.parts_compute_dtype == "float32"
    assert len(translator.translate([PAPER_EXAMPLE[0], "Il est grand."])) == 2

    # Continued elsewhere, "auto" keeps the policy the run started with.
    monkeypatch.setattr(precision, "cpu_has_bfloat16_matmul", lambda: False)
    translator = train(str(config), run_dir, data=corpus, epochs=2, verbose=0)
    resumed = keras.saving.load_model(run_dir / "model.keras", compile=False)
    assert resumed.parts_compute_dtype == "bfloat16"
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 2
