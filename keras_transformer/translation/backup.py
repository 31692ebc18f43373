"""Resumable training: atomic checkpoints, step backups, a clean stop on SIGTERM.

`TrainingBackup` replaces `keras.callbacks.BackupAndRestore`, which in Keras
3.15 writes its weights file in place (a kill during the write leaves it
corrupt), writes the weights and the epoch number as two files with no
commit point, and restores the epoch but not the step within it, so a run
resumed from a mid-epoch backup repeats that epoch's first steps. Here:

- the weights and the optimizer state go to a new file, then `state.json`,
  written to a temporary file and renamed, names that file and the position
  (epoch, step): a reader always finds a complete, consistent backup;
- a resumed run starts at the saved step, not at the start of its epoch;
- the dropout seed generators' states, which `save_weights` leaves out, are
  saved in `state.json`;
- a state whose loss or weights are not finite is never saved.

With an input pipeline that replays the same batches from that step (see
`train`), a run interrupted and resumed ends with the same weights as an
uninterrupted run.
"""

import contextlib
import json
import math
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np

from keras_transformer.files import atomic_file, write_file_atomic

STATE_FILE = "state.json"


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after backing up its state."""


def _is_healthy(model: keras.Model, logs: dict | None) -> bool:
    """Whether the logged loss and every trainable weight are finite."""
    if not math.isfinite((logs or {}).get("loss", 0.0)):
        return False
    return all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.trainable_weights)


def _seed_generator_states(model: keras.Model) -> list:
    """The variables `save_weights` leaves out: per `Layer.variables`, exactly
    the states of the seed generators (dropout)."""
    weights = {id(weight) for weight in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model after every epoch, atomically, unless it diverged.

    Args:
        path_pattern: a `.keras` path with an `{epoch}` field (1-based).
        backup: the run's `TrainingBackup`, placed after this callback: an
            epoch that a requested stop cut short is not saved.
    """

    def __init__(self, path_pattern: str, backup: "TrainingBackup | None" = None):
        super().__init__()
        self.path_pattern = path_pattern
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        if self.backup is not None and not self.backup.epoch_complete:
            return
        if _is_healthy(self.model, logs):
            with atomic_file(self.path_pattern.format(epoch=epoch + 1)) as temporary:
                self.model.save(temporary)


class TrainingBackup(keras.callbacks.Callback):
    """Backs up the training state every `every_steps` steps and after every epoch.

    Put it after the callbacks that write per-epoch files, so that a backup
    at an epoch end follows them. `restore` before `fit`, and feed `fit`
    the batches from the restored position on; `fit(initial_epoch=epoch)`
    then runs the rest of the resumed epoch, and this callback ends that
    epoch after its remaining steps. While `stop_on_signals` is active, a
    signal makes it back up after the current step and raise
    `TrainingInterrupted`. A callback placed before this one can call
    `request_stop` (a time limit, early stopping): this one then backs up
    after the current step and stops `fit` without counting the partial
    epoch as done; the callbacks before it read `epoch_complete` in
    `on_epoch_end` to skip a partial epoch. The backup stays after training
    ends, so that a finished run can be continued with more epochs.

    Args:
        directory: the backup directory, which this callback owns.
        steps_per_epoch: the steps of one epoch.
        every_steps: the steps between two backups within an epoch.

    Attributes:
        epoch, step: the position of the next step: `step` steps of the
            0-based epoch `epoch` are done.
        stop_reason: why `request_stop` stopped training ("max_time",
            "early_stopping"), or None; restored with the backup.
    """

    def __init__(self, directory: str | os.PathLike, steps_per_epoch: int, every_steps: int):
        super().__init__()
        self.directory = Path(directory)
        self.steps_per_epoch = steps_per_epoch
        self.every_steps = every_steps
        self.epoch = self.step = 0
        self.saved = None  # the (epoch, step) of the last backup
        self.stop_signal = None  # the name of the signal that asked to stop
        self.stop_reason = None
        self._ends_epoch_early = False

    @property
    def epoch_complete(self) -> bool:
        """Whether every step of the current epoch is done; callbacks before
        this one read it in `on_epoch_end`, which also follows a stop."""
        return self.step == self.steps_per_epoch

    def request_stop(self, reason: str) -> None:
        """Backs up after the current step and stops `fit`; `reason` is kept
        in the backup (call it from a callback placed before this one)."""
        self.stop_reason = reason

    def restore(self, model: keras.Model) -> bool:
        """Loads the last backup into `model` and takes its position; False if none."""
        path = self.directory / STATE_FILE
        if not path.is_file():
            return False
        state = json.loads(path.read_text(encoding="utf-8"))
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.directory / state["weights"])
        for variable, value in zip(
            _seed_generator_states(model), state["seed_generator_states"], strict=True
        ):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        self.epoch, self.step = self.saved = state["epoch"], state["step"]
        if self.step == self.steps_per_epoch:  # backed up before its epoch's end
            self.epoch, self.step = self.epoch + 1, 0
        self.stop_reason = state.get("stop_reason")
        return True

    def save(self, logs: dict | None) -> None:
        """Writes the weights file, then `state.json` naming it, then deletes older files."""
        if not _is_healthy(self.model, logs):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch_{self.epoch:03d}_step_{self.step:06d}.weights.h5"
        with atomic_file(self.directory / name) as temporary:
            self.model.save_weights(temporary)
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "weights": name,
            "stop_reason": self.stop_reason,
            "seed_generator_states": [
                keras.ops.convert_to_numpy(variable).tolist()
                for variable in _seed_generator_states(self.model)
            ],
        }
        write_file_atomic(self.directory / STATE_FILE, json.dumps(state) + "\n")
        for path in self.directory.iterdir():
            if path.name not in (name, STATE_FILE):
                path.unlink()
        self.saved = (self.epoch, self.step)

    def on_train_begin(self, logs=None):
        self.stop_reason = None  # a restored reason says why the last run stopped

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every_steps == 0 or self.stop_signal or self.stop_reason:
            self.save(logs)
        self._stop_if_signalled()
        if self.stop_reason:
            self.model.stop_training = True
        elif self.step == self.steps_per_epoch and batch + 1 < self.steps_per_epoch:
            # The resumed epoch is done; `on_epoch_end` lets `fit` go on.
            self.model.stop_training = self._ends_epoch_early = True

    def on_epoch_end(self, epoch, logs=None):
        if not self.epoch_complete:  # stopped mid-epoch, backed up at its step
            return
        self.epoch, self.step = epoch + 1, 0
        self.save(logs)
        if self._ends_epoch_early and math.isfinite((logs or {}).get("loss", 0.0)):
            self.model.stop_training = self.stop_reason is not None
        self._ends_epoch_early = False
        self._stop_if_signalled()

    def _stop_if_signalled(self) -> None:
        if self.stop_signal is None:
            return
        if self.saved is None:
            saved = "no training state was backed up, so the same command starts over"
        else:
            epoch, step = self.saved
            saved = (
                f"the training state after step {step} of epoch {epoch + 1} is in "
                f"{self.directory}; run the same command again to resume"
            )
        raise TrainingInterrupted(f"Training stopped on {self.stop_signal}: {saved}.")


@contextlib.contextmanager
def stop_on_signals(backup: TrainingBackup) -> Iterator[None]:
    """While active, SIGINT and SIGTERM make `backup` save and stop after the
    current step; a second signal acts as usual (immediately). Python runs
    signal handlers in the main thread only, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in numbers}

    def request_stop(number, frame):
        backup.stop_signal = signal.Signals(number).name
        signal.signal(number, previous[number])

    for number in numbers:
        signal.signal(number, request_stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
