"""Per-epoch TensorBoard scalars written with core TensorFlow only.

`keras.callbacks.TensorBoard` writes its scalars with `tf.summary.scalar`,
which TensorFlow implements only when the `tensorboard` package is
installed; without it, training fails at the end of the first epoch with
`TBNotInstalledError`. This callback writes the same event files through
`tf.summary.write`, which is core TensorFlow, so logs are written whether or
not `tensorboard` is installed and `tensorboard --logdir RUN_DIR/logs` reads
them.
"""

import keras
import tensorflow as tf

# Marks a summary as a scalar for TensorBoard's scalars dashboard.
_SCALAR_METADATA = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
)


class EpochSummaries(keras.callbacks.Callback):
    """Logs every epoch's metrics and learning rate as TensorBoard scalars.

    The layout is that of `keras.callbacks.TensorBoard`: `log_dir/train` and
    `log_dir/validation`, tags "epoch_loss", "epoch_accuracy", ...,
    and "epoch_learning_rate", stepped by epoch.

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

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["learning_rate"] = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        for name, value in logs.items():
            split = "validation" if name.startswith("val_") else "train"
            tag = "epoch_" + name.removeprefix("val_")
            value = tf.constant(float(value))
            with self._writer(split).as_default():
                tf.summary.write(tag, value, step=epoch, metadata=_SCALAR_METADATA)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
