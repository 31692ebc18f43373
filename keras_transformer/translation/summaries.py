"""TensorBoard scalars of a training run: per step and per epoch.

With the `tensorboard` package installed (the `tensorboard` extra),
`TrainingTensorBoard`, a `keras.callbacks.TensorBoard`, writes them. Without
it, `keras.callbacks.TensorBoard` fails at the end of the first epoch with
`TBNotInstalledError`, because `tf.summary.scalar` needs the package; then
`EpochSummaries` writes the same scalars through `tf.summary.write`, which is
core TensorFlow. `summary_callback` picks one. Either way
`tensorboard --logdir RUN_DIR/logs` reads the event files.

Layout (that of `keras.callbacks.TensorBoard`): `log_dir/train` and
`log_dir/validation`; per step "batch_loss", "batch_accuracy" (the running
means of the epoch so far) and "batch_learning_rate", stepped by the
optimizer's step count, so a resumed run goes on where it stopped; per
epoch "epoch_loss", "epoch_accuracy", "epoch_learning_rate", ..., stepped by
epoch.
"""

import importlib.util

import keras
import tensorflow as tf

# Marks a summary as a scalar for TensorBoard's scalars dashboard.
SCALAR_METADATA = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
)


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def _learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def optimizer_step(model: keras.Model) -> int:
    """The optimizer's step count as an int (a MirroredVariable under a
    `tf.distribute` strategy, which `int()` does not take)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


class TrainingTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` with per-step scalars, the learning rate
    among them, stepped by the optimizer's step count.

    Args:
        log_dir: the directory of the event files.
    """

    def __init__(self, log_dir: str):
        super().__init__(log_dir, update_freq=1, write_graph=False, profile_batch=0)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = optimizer_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if isinstance(logs, dict):
            logs = {**logs, "learning_rate": _learning_rate(self.model)}
        super().on_train_batch_end(batch, logs)


class EpochSummaries(keras.callbacks.Callback):
    """Logs every step's and epoch's metrics and learning rate as TensorBoard
    scalars with core TensorFlow only (see the module's layout).

    Args:
        log_dir: the directory of the event files.
    """

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self._writers = {}

    def _writer(self, split: str):
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(f"{self.log_dir}/{split}")
        return self._writers[split]

    def _write(self, prefix: str, logs: dict, step: int) -> None:
        for name, value in logs.items():
            split = "validation" if name.startswith("val_") else "train"
            tag = prefix + name.removeprefix("val_")
            with self._writer(split).as_default():
                tf.summary.write(
                    tag, tf.constant(float(value)), step=step, metadata=SCALAR_METADATA
                )

    def on_train_batch_end(self, batch, logs=None):
        logs = {**(logs or {}), "learning_rate": _learning_rate(self.model)}
        self._write("batch_", logs, optimizer_step(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self._write("epoch_", {**(logs or {}), "learning_rate": _learning_rate(self.model)}, epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def summary_callback(log_dir: str) -> keras.callbacks.Callback:
    """`TrainingTensorBoard` when `tensorboard` is installed, else `EpochSummaries`."""
    return TrainingTensorBoard(log_dir) if tensorboard_installed() else EpochSummaries(log_dir)
