"""Killing `keras-transformer train` mid-epoch, then running the same command again.

The guarantee checked, after a SIGKILL (and, marked slow, a SIGTERM) in the
middle of the second epoch:

1. Nothing in the run directory is corrupt: the config, vocabularies and
   test split parse, every `.keras` file loads, and the backup's
   `state.json` names a weights file that loads into the model. The
   SIGKILL lands while a backup is being written.
2. The same command resumes from the backup, mid-epoch: it runs epoch 2
   only, from the backed-up step, and the optimizer's step count goes on
   from there. A SIGKILL loses the steps since the last backup (at most
   `backup_steps`); SIGTERM backs up the step it stops at.
3. The resumed run ends with exactly the weights and optimizer state of an
   uninterrupted run of the same command (`assert_array_equal`, no
   tolerance), dropout included. This holds because every epoch reads the
   same batches in both runs (the k-th pass of the seeded shuffle, the
   steps already taken skipped), the backup holds the weights, the
   optimizer and the dropout seed states, and TensorFlow's CPU kernels give
   the same result for the same inputs on the same machine and thread
   count. It is not promised across machines, TensorFlow builds or thread
   counts; there, only 1 and 2 hold.

The killed and resumed runs are new processes; the uninterrupted one runs in
the test process, so equality also shows that no process state leaks in.
`test_sigterm_backs_up_the_step_it_stops_at` checks the SIGTERM stop without
starting a process.

The last test covers a loss that becomes NaN: the command stops, says so in
one line naming the epoch, and keeps the last good checkpoint.
"""

import functools
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_transformer import cli, translation
from keras_transformer.data import generate_pairs, load_vocabulary
from keras_transformer.translation import read_run_config, train
from keras_transformer.translation.backup import (
    TrainingBackup,
    TrainingInterrupted,
    stop_on_signals,
)
from keras_transformer.translation.run_directory import read_test_split

# Batches of 8 make epochs of about 35 steps, backed up every 5 steps;
# dropout checks that its random state is restored too, and the weights'
# moving average that the backup holds it.
CONFIG = {
    "recipe": "tiny", "num_layers": 1, "hidden_dim": 32, "num_heads": 2,
    "intermediate_dim": 64, "dropout": 0.1, "max_sequence_length": 16,
    "source_vocabulary_size": 300, "target_vocabulary_size": 300, "batch_size": 8,
    "epochs": 2, "warmup_steps": 20, "backup_steps": 5, "beam_size": 1,
    "ema_momentum": 0.9,
}
KILL_AFTER_STEP = 5  # of the second epoch: the signal follows its backup
TIMEOUT = 600
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("interruption")
    corpus, config = directory / "corpus.tsv", directory / "config.json"
    pairs = generate_pairs(num_pairs=300, seed=5)
    corpus.write_text("".join(f"{en}\t{fr}\n" for fr, en in pairs), encoding="utf-8")
    config.write_text(json.dumps(CONFIG))
    return corpus, config


def command(files, run_dir):
    corpus, config = files
    return [sys.executable, "-m", "keras_transformer", "train", "--output-dir", str(run_dir),
            "--data", str(corpus), "--config", str(config)]


def run(files, run_dir):
    result = subprocess.run(
        command(files, run_dir), capture_output=True, text=True, timeout=TIMEOUT, env=ENV
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def uninterrupted(files, tmp_path_factory):
    """The same command run to the end without interruption, in this process."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert cli.main(command(files, run_dir)[3:]) == 0
    return keras.saving.load_model(run_dir / "model.keras")


def backup_state(run_dir):
    try:
        return json.loads((run_dir / "backup" / "state.json").read_text())
    except FileNotFoundError:
        return None


def writing_a_backup(run_dir):
    """Whether a backup's weights file is being written (its temporary name)."""
    return any(path.name.startswith(".") for path in (run_dir / "backup").iterdir())


def start_and_kill(files, run_dir, signal_number):
    """Starts training and sends `signal_number` once step KILL_AFTER_STEP of
    the second epoch is backed up; SIGKILL waits for the next backup's write
    to start, to land in the middle of it. Waits for the process to end."""
    process = subprocess.Popen(
        command(files, run_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=ENV,
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        state = backup_state(run_dir)
        if state and (state["epoch"], state["step"]) >= (1, KILL_AFTER_STEP) and (
            signal_number != signal.SIGKILL or writing_a_backup(run_dir)
        ):
            process.send_signal(signal_number)
            break
        time.sleep(0.01)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode != 0, "training finished before the signal"
    return process.returncode, out, err


def assert_intact(run_dir):
    """Every file the run directory holds parses or loads; returns the backup's model."""
    config, direction = read_run_config(run_dir)
    assert direction == "fr-en"
    for side in ("source", "target"):
        assert len(load_vocabulary(run_dir / f"{side}_vocabulary.txt")) == getattr(
            config, f"{side}_vocabulary_size"
        )
    assert read_test_split(run_dir / "test.tsv")
    models = sorted(path for path in run_dir.rglob("*.keras") if not path.name.startswith("."))
    assert [path.name for path in models] == ["best.keras", "epoch_001.keras"]
    model, _ = [keras.saving.load_model(path) for path in reversed(models)]
    state = backup_state(run_dir)
    model.load_weights(run_dir / "backup" / state["weights"])
    assert int(model.optimizer.iterations) > 0
    return model


def assert_same_state(model, reference):
    for weight, expected in zip(model.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), expected.numpy(), err_msg=weight.path)
    for variable, expected in zip(
        model.optimizer.variables, reference.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(variable.numpy(), expected.numpy(), err_msg=variable.path)


@pytest.mark.parametrize(
    "signal_number",
    # The SIGTERM run costs another minute; test_sigterm_... below checks the
    # same stop without starting a process.
    [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
)
def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(
    files, uninterrupted, tmp_path, signal_number
):
    run_dir = tmp_path / "run"
    returncode, _, err = start_and_kill(files, run_dir, signal_number)
    state = backup_state(run_dir)
    steps_per_epoch = int(
        keras.saving.load_model(run_dir / "checkpoints" / "epoch_001.keras").optimizer.iterations
    )
    assert state["epoch"] == 1 and KILL_AFTER_STEP <= state["step"] < steps_per_epoch
    backed_up = assert_intact(run_dir)
    assert int(backed_up.optimizer.iterations) == steps_per_epoch + state["step"]
    if signal_number == signal.SIGTERM:
        assert returncode == 130
        assert "Training stopped on SIGTERM" in err and "to resume" in err
        assert "Traceback" not in err
    else:
        assert returncode == -signal.SIGKILL
        assert state["step"] % CONFIG["backup_steps"] == 0

    out = run(files, run_dir).stdout
    assert "Epoch 2/2" in out and "Epoch 1/2" not in out
    assert backup_state(run_dir)["epoch"] == 2  # kept, to continue the run
    assert not [path for path in run_dir.rglob(".*")]  # no temporary file left
    resumed = keras.saving.load_model(run_dir / "model.keras")
    assert int(resumed.optimizer.iterations) == 2 * steps_per_epoch
    assert_same_state(resumed, uninterrupted)


class SignalAfterBatch(keras.callbacks.Callback):
    """Sends SIGTERM to this process after batch `batch` of the first epoch,
    and records the SIGTERM handler the signal leaves in place."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch
        self.handler_after = None

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)
            self.handler_after = signal.getsignal(signal.SIGTERM)


def dense_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_sigterm_backs_up_the_step_it_stops_at(tmp_path, rng):
    """The SIGTERM path of the CLI test above, in this process and in a second."""
    model = dense_model()
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(40, 1))
    backup = TrainingBackup(tmp_path, steps_per_epoch=10, every_steps=100)
    signaller = SignalAfterBatch(3)
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(
        TrainingInterrupted, match="on SIGTERM: the training state after step 4 of epoch 1 is in"
    ):
        with stop_on_signals(backup):
            model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[signaller, backup])
    assert signaller.handler_after == handler_before  # a second SIGTERM acts at once
    assert signal.getsignal(signal.SIGTERM) == handler_before
    assert int(model.optimizer.iterations) == 4

    restored = dense_model()
    resumed = TrainingBackup(tmp_path, steps_per_epoch=10, every_steps=100)
    assert resumed.restore(restored)
    assert (resumed.epoch, resumed.step) == (0, 4)
    assert_same_state(restored, model)


class PoisonWeights(keras.callbacks.Callback):
    """Makes the loss NaN from the third step of the second epoch on."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            embeddings = self.model.decoder_embedding.embeddings
            embeddings.assign(embeddings * float("nan"))


def test_a_nan_loss_stops_the_command_and_keeps_the_last_good_checkpoint(
    files, tmp_path, monkeypatch, capsys
):
    run_dir = tmp_path / "run"
    # The CLI imports `train` from keras_transformer.translation when it runs.
    monkeypatch.setattr(
        translation, "train", functools.partial(train, callbacks=[PoisonWeights()])
    )
    assert cli.main(command(files, run_dir)[3:]) == 1
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1
    assert "NaN" in err and "in epoch 2;" in err
    checkpoint = run_dir / "checkpoints" / "epoch_001.keras"
    assert f"the last good checkpoint, {checkpoint}, is kept" in err
    assert "Test split" not in out
    assert not (run_dir / "model.keras").exists()
    assert not (run_dir / "checkpoints" / "epoch_002.keras").exists()
    backed_up = assert_intact(run_dir)
    assert all(np.isfinite(weight.numpy()).all() for weight in backed_up.weights)
