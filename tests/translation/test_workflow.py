"""The training workflow: validation and test files, continuing a finished
run, fine-tuning from another run, the best checkpoint by validation BLEU,
early stopping, a time limit, n-best translations and TensorBoard logs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.data import DataError, generate_pairs
from keras_transformer.translation import Translator, train, training_summary
from keras_transformer.translation.backup import TrainingBackup
from keras_transformer.translation.run_directory import load_run, read_test_split
from keras_transformer.translation.summaries import (
    EpochSummaries,
    TrainingTensorBoard,
    summary_callback,
    tensorboard_installed,
)
from keras_transformer.translation.validation import ValidationBleu


class RecordEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


class RecordInitialWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [keras.ops.convert_to_numpy(w) for w in self.model.weights]


def steps_of(path):
    return int(keras.saving.load_model(path).optimizer.iterations)


def write_corpus(path, num_pairs, seed):
    pairs = generate_pairs(num_pairs=num_pairs, seed=seed)
    path.write_text("".join(f"{en}\t{fr}\n" for fr, en in pairs), encoding="utf-8")
    return path


def write_parallel(prefix, pairs):
    for side, language in enumerate(("fr", "en")):
        text = "".join(pair[side] + "\n" for pair in pairs)
        prefix.with_name(f"{prefix.name}.{language}").write_text(text, encoding="utf-8")
    return prefix


def test_validation_and_test_files_replace_the_split(tiny_files, tmp_path):
    _, config = tiny_files
    pairs = generate_pairs(num_pairs=260, seed=7)
    train_prefix = write_parallel(tmp_path / "train", pairs[:200])
    validation_prefix = write_parallel(tmp_path / "val", pairs[200:230])
    test_prefix = write_parallel(tmp_path / "test", pairs[230:])
    run_dir = tmp_path / "run"
    train(str(config), run_dir, data=train_prefix, validation_data=validation_prefix,
          test_data=test_prefix, batch_tokens=160, verbose=0)
    assert read_test_split(run_dir / "test.tsv") == pairs[230:]
    assert load_run(run_dir).config.batch_tokens == 160
    record = json.loads((run_dir / "training.json").read_text())
    assert [item["epoch"] for item in record["evaluations"]] == [1]
    assert Translator.from_run_dir(run_dir).translate(["Je suis étudiant."])


def test_bad_validation_and_test_paths_name_the_argument(tiny_files, tmp_path):
    corpus, config = tiny_files
    with pytest.raises(DataError, match=r"validation_data \(--validation-data\): No corpus"):
        train(str(config), tmp_path / "a", data=corpus, validation_data=tmp_path / "nowhere")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(DataError, match=r"test_data \(--test-data\): .*empty\.tsv: the file is"):
        train(str(config), tmp_path / "b", data=corpus, test_data=tmp_path / "empty.tsv")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_finished_run_continues_with_more_epochs_and_is_left_alone_without(
    tiny_files, tmp_path
):
    corpus, config = tiny_files
    run_dir = tmp_path / "run"
    train(str(config), run_dir, data=corpus, epochs=1, verbose=0)
    steps_per_epoch = steps_of(run_dir / "checkpoints" / "epoch_001.keras")
    first_checkpoint = (run_dir / "checkpoints" / "epoch_001.keras").read_bytes()

    more = RecordEpochs()
    translator = train(str(config), run_dir, data=corpus, epochs=2, verbose=0, callbacks=[more])
    assert more.epochs == [1]  # continued, not started over
    assert steps_of(run_dir / "checkpoints" / "epoch_002.keras") == 2 * steps_per_epoch
    assert (run_dir / "checkpoints" / "epoch_001.keras").read_bytes() == first_checkpoint
    assert translator.translate(["Je suis étudiant."])

    model = (run_dir / "model.keras").read_bytes()
    again = RecordEpochs()
    train(str(config), run_dir, data=corpus, epochs=2, verbose=0, callbacks=[again])
    assert again.epochs == []  # finished: nothing trained, nothing rewritten
    assert (run_dir / "model.keras").read_bytes() == model
    run = load_run(run_dir)
    assert run.config.epochs == 2
    for path in (run_dir / "checkpoints").glob("*.keras"):
        keras.saving.load_model(path)


def test_a_finished_run_without_its_backup_is_not_overwritten(trained_run, tiny_files, tmp_path):
    corpus, config = tiny_files
    run_dir = tmp_path / "old"  # a finished run from before backups were kept
    run_dir.mkdir()
    for path in trained_run[0].iterdir():
        if path.is_file():
            (run_dir / path.name).write_bytes(path.read_bytes())
    model = (run_dir / "model.keras").read_bytes()
    with pytest.raises(ValueError, match=r"without its training state.*--init-from"):
        train(str(config), run_dir, data=corpus, epochs=3, verbose=0)
    assert (run_dir / "model.keras").read_bytes() == model


def test_fine_tuning_starts_from_the_other_runs_weights_and_vocabularies(
    trained_run, tmp_path
):
    source_run, _ = trained_run
    corpus = write_corpus(tmp_path / "domain.tsv", num_pairs=120, seed=9)
    run_dir = tmp_path / "fine_tuned"
    initial = RecordInitialWeights()
    translator = train(None, run_dir, data=corpus, init_from=source_run, verbose=0,
                       callbacks=[initial])
    source = load_run(source_run)
    for weight, expected in zip(initial.weights, source.model.weights, strict=True):
        np.testing.assert_array_equal(weight, keras.ops.convert_to_numpy(expected))
    for name in ("source_vocabulary.txt", "target_vocabulary.txt"):
        assert (run_dir / name).read_text() == (source_run / name).read_text()
    assert translator.translate(["Je suis étudiant."])
    assert load_run(run_dir).config == source.config


def test_fine_tuning_needs_the_same_model_sizes(trained_run, tiny_files, tmp_path):
    corpus, tiny_config = tiny_files
    config = tmp_path / "bigger.json"
    config.write_text(json.dumps({**json.loads(tiny_config.read_text()), "hidden_dim": 64}))
    with pytest.raises(ValueError, match=r"--init-from .*hidden_dim=32 there, 64 here"):
        train(str(config), tmp_path / "run", data=corpus, init_from=trained_run[0])


def test_max_time_stops_after_a_step_backed_up_and_resumes(tiny_files, tmp_path):
    corpus, config = tiny_files
    run_dir = tmp_path / "run"
    translator = train(str(config), run_dir, data=corpus, epochs=3, max_time=0.0001, verbose=0)
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert (state["epoch"], state["step"], state["stop_reason"]) == (0, 1, "max_time")
    assert not list((run_dir / "checkpoints").glob("epoch_*.keras"))  # no epoch ended
    assert "stopped at the time limit at step 1, in epoch 1;" in training_summary(run_dir)
    # The model at the stop is evaluated, so it is the best of one.
    assert "model.keras is the best by validation BLEU: step 1 (epoch 1)" in training_summary(
        run_dir
    )
    assert translator.translate(["Je suis étudiant."])
    Translator.from_run_dir(run_dir)

    resumed = RecordEpochs()
    train(str(config), run_dir, data=corpus, epochs=3, max_time=0.0001, verbose=0,
          callbacks=[resumed])
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert resumed.epochs == [0] and (state["epoch"], state["step"]) == (0, 2)


def dense_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_the_best_checkpoint_follows_bleu_and_early_stopping_counts_evaluations(tmp_path):
    """Fake BLEU values; each recorded model is marked by its bias."""
    model = dense_model()
    backup = TrainingBackup(tmp_path / "backup", steps_per_epoch=10, every_steps=100)
    validator = ValidationBleu(
        None, [], tmp_path, backup, str(tmp_path / "logs"), patience=2
    )
    validator.set_model(model)
    (tmp_path / "checkpoints").mkdir()
    bias = model.layers[0].bias

    def record(mark, bleu):
        bias.assign([float(mark)])
        model.optimizer.iterations.assign(mark)
        validator.record(bleu)

    def best_mark():
        best = keras.saving.load_model(tmp_path / "checkpoints" / "best.keras")
        return float(best.layers[0].bias.numpy()[0])

    record(1, 10.0)
    assert best_mark() == 1
    record(2, 12.5)
    assert best_mark() == 2
    record(3, 11.0)
    assert best_mark() == 2 and backup.stop_reason is None
    record(4, 12.5)  # a tie: the later model is kept, but it is no improvement
    assert best_mark() == 4 and backup.stop_reason == "early_stopping"
    saved = json.loads((tmp_path / "training.json").read_text())["evaluations"]
    assert [item["bleu"] for item in saved] == [10.0, 12.5, 11.0, 12.5]
    seconds = [item["seconds"] for item in saved]  # since training began, rising
    assert seconds == sorted(seconds) and 0 <= seconds[0] and seconds[-1] < 60

    # A run resumed from step 2 drops the evaluations after it, to repeat them.
    model.optimizer.iterations.assign(2)
    validator.on_train_begin()
    assert [item.step for item in validator.evaluations] == [1, 2]


def test_n_best_gives_distinct_translations_sorted_by_score(trained_run):
    _, translator = trained_run
    texts = ["Je suis étudiant.", "Nous aimons les chiens.", ""]
    n_best = translator.translate_n_best(texts, 2, beam_size=2)
    best = translator.translate(texts, beam_size=2)
    for hypotheses, expected in zip(n_best[:2], best):
        assert len(hypotheses) == 2
        assert len({translation for translation, _ in hypotheses}) == 2
        assert hypotheses[0][1] >= hypotheses[1][1]
        assert hypotheses[0][0] == expected
    assert n_best[2] == [("", 0.0)]
    with pytest.raises(ValueError, match=r"`n_best` must be at most the beam size.*n_best=3"):
        translator.translate_n_best(texts, 3, beam_size=2)


def scalar_tags(directory):
    tags = set()
    for path in directory.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


@pytest.mark.parametrize("installed", [True, False])
def test_summaries_log_per_step_loss_and_learning_rate(installed, tmp_path, monkeypatch):
    if installed and not tensorboard_installed():
        pytest.skip("the tensorboard extra is not installed")
    monkeypatch.setattr(
        "keras_transformer.translation.summaries.tensorboard_installed", lambda: installed
    )
    callback = summary_callback(str(tmp_path))
    assert isinstance(callback, TrainingTensorBoard if installed else EpochSummaries)
    model = dense_model()
    model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=4, epochs=2, verbose=0,
              callbacks=[callback])
    tags = scalar_tags(tmp_path / "train")
    assert {"batch_loss", "batch_learning_rate", "epoch_loss", "epoch_learning_rate"} <= tags


def test_early_stopping_stops_mid_epoch_and_the_run_stays_stopped(tiny_files, tmp_path):
    """Two steps in, BLEU is 0 at every evaluation: none improves on the first."""
    corpus, config = tiny_files
    run_dir = tmp_path / "run"
    options = {"data": corpus, "epochs": 2, "validation_steps": 2, "early_stopping": 1,
               "verbose": 0}
    train(str(config), run_dir, **options)
    record = json.loads((run_dir / "training.json").read_text())
    assert [item["bleu"] for item in record["evaluations"]] == [0.0, 0.0]
    assert record["stopped"] == "early_stopping"
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (0, 4)
    assert "stopped early, validation BLEU no longer improving, at step 4, in epoch 1; " \
        "model.keras is the best by validation BLEU: step 4 (epoch 1)" in training_summary(run_dir)

    again = RecordEpochs()
    train(str(config), run_dir, callbacks=[again], **options)
    assert again.epochs == []
    assert steps_of(run_dir / "model.keras") == 4
