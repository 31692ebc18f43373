"""Data-parallel training of a translation run through `tf.distribute`.

`train(..., distribution=...)` and `keras-transformer train --distribution`
take one of:

- "none": no strategy (TensorFlow's default strategy, one device).
- "mirrored": `tf.distribute.MirroredStrategy` over this machine's GPUs, or
  its CPU when it has none. TensorFlow shows a machine's CPU cores as one
  device, so on a CPU-only machine this is one replica: the same training as
  "none", through the strategy's code path.
- "multi-worker": `tf.distribute.MultiWorkerMirroredStrategy` over the
  processes named in the `TF_CONFIG` environment variable, one per machine
  (or several on one machine, on different ports), each running the same
  command with its own task index.

Under a strategy, each global batch of `config.batch_size` sentence pairs is
split along B across the replicas (tf.data auto-sharding by data: every
worker reads the whole seeded pipeline and keeps its part of every batch),
the gradients are summed across replicas, and the loss divides by the token
count of the global batch (see `MaskedSparseCategoricalCrossentropy`), so
every replica ends with the weights one process gets on the same global
batches, to float rounding, when dropout is 0 (dropout draws different
masks on each replica).

Only the chief (task index 0) writes the run directory; every other worker
writes its files (vocabularies, checkpoints, backups, logs, model) to a
temporary directory deleted when its process exits, so two workers never
write the same file. A multi-worker run cannot resume: a worker other than
the chief does not see the chief's backup and would restart from step 0, so
`--output-dir` must not hold a run yet (refused before any worker starts
training). A SIGINT or SIGTERM should go to every worker.
"""

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from keras_transformer.checks import check_choice
from keras_transformer.translation.run_directory import CONFIG_FILE

DISTRIBUTIONS = ("none", "mirrored", "multi-worker")
TF_CONFIG_SHAPE = (
    '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
)


def read_tf_config(text: str | None) -> dict:
    """Parses and checks a `TF_CONFIG` value for `MultiWorkerMirroredStrategy`.

    Args:
        text: the value of the `TF_CONFIG` environment variable, or None
            when it is not set.

    Returns:
        The parsed dict: a "cluster" of "worker" addresses (and optionally a
        "chief" job of one address), and this process's "task" type and index.

    Raises:
        ValueError: `text` is None, not JSON, or not of the shape
            `{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}`.

    Example:
    >>> read_tf_config('{"cluster": {"worker": ["127.0.0.1:2222"]}, '
    ...                '"task": {"type": "worker", "index": 0}}')["task"]
    {'type': 'worker', 'index': 0}
    """
    expected = f"expected TF_CONFIG={TF_CONFIG_SHAPE}"
    if text is None:
        raise ValueError(
            f"--distribution multi-worker needs TF_CONFIG, which is not set; {expected}."
        )
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"TF_CONFIG is not JSON: received {text!r}; {expected}.") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    jobs_valid = (
        isinstance(cluster, dict)
        and set(cluster) <= {"worker", "chief"}
        and isinstance(cluster.get("worker"), list)
        and len(cluster.get("chief", [""])) == 1
        and all(
            isinstance(addresses, list) and addresses
            and all(isinstance(address, str) for address in addresses)
            for addresses in cluster.values()
        )
    )
    task_valid = (
        jobs_valid
        and isinstance(task, dict)
        and task.get("type") in cluster
        and isinstance(task.get("index"), int)
        and not isinstance(task.get("index"), bool)
        and 0 <= task["index"] < len(cluster[task["type"]])
    )
    if not task_valid:
        raise ValueError(f"TF_CONFIG is malformed: received {text!r}; {expected}.")
    return tf_config


class _KerasFitReduce:
    """A strategy mixin whose `reduce` takes what Keras 3.15's `fit` gives it.

    Keras's TensorFlow trainer calls `reduce` in two ways that fail:

    - before training or evaluating, on the first batch, a nested structure
      (`({"encoder_token_ids": ..., "decoder_token_ids": ...}, labels)`),
      with MEAN, only to read its shapes and dtypes for a symbolic build.
      `MultiWorkerMirroredStrategy` reduces single values only
      (keras-team/keras#20329), and a mean across replicas fails under either
      strategy when the batch splits unevenly (the replicas' batch sizes
      differ). A nested structure reduces here to this process's first
      replica's values: the shapes and dtypes the symbolic build reads.
    - with several workers, after every step, on each replica's scalar logs
      (loss, metrics), with MEAN along axis 0, which a scalar does not have.
      A scalar reduces here along no axis: the mean over the replicas, what
      Keras computes with one worker.
    """

    def reduce(self, reduce_op, value, axis):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(
                lambda leaf: self.experimental_local_results(leaf)[0], value
            )
        local_value = self.experimental_local_results(value)[0]
        if axis is not None and len(getattr(local_value, "shape", ())) == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)


class _MirroredStrategy(_KerasFitReduce, tf.distribute.MirroredStrategy):
    """`tf.distribute.MirroredStrategy` for Keras's `fit` (see `_KerasFitReduce`)."""


class _MultiWorkerMirroredStrategy(_KerasFitReduce, tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` for Keras's `fit` (see `_KerasFitReduce`)."""


def _is_chief(tf_config: dict) -> bool:
    """TensorFlow's convention: the "chief" task, else worker 0 of a chief-less cluster."""
    task = tf_config["task"]
    if "chief" in tf_config["cluster"]:
        return task["type"] == "chief"
    return task["index"] == 0


def distribute_run(
    distribution: str, output_dir: str | os.PathLike
) -> tuple[tf.distribute.Strategy, Path]:
    """The strategy to build and train the model under, and the directory this
    process writes the run to.

    Call it before any other TensorFlow operation of the process:
    `MultiWorkerMirroredStrategy` configures collective operations, which
    TensorFlow allows only at startup, and waits for every worker of
    `TF_CONFIG` to start.

    Args:
        distribution: "none", "mirrored" or "multi-worker" (see the module).
        output_dir: the run directory.

    Returns:
        (strategy, run_dir): `tf.distribute.get_strategy()` (the default,
        one-device strategy) for "none"; `run_dir` is `output_dir` except on
        a multi-worker run's non-chief workers, which get a temporary
        directory deleted when the process exits.

    Raises:
        ValueError: an unknown `distribution`; for "multi-worker", a missing
            or malformed `TF_CONFIG`, or an `output_dir` that holds a run.

    Example:
    >>> strategy, run_dir = distribute_run("mirrored", "runs/mirrored")  # doctest: +SKIP
    >>> with strategy.scope():  # doctest: +SKIP
    ...     model = build_seq2seq_transformer(...)
    ...     model.compile(...)
    """
    check_choice("distribution", distribution, DISTRIBUTIONS)
    run_dir = Path(output_dir)
    if distribution == "none":
        return tf.distribute.get_strategy(), run_dir
    if distribution == "mirrored":
        return _MirroredStrategy(), run_dir
    tf_config = read_tf_config(os.environ.get("TF_CONFIG"))
    if (run_dir / CONFIG_FILE).is_file():
        raise ValueError(
            f"{run_dir} holds a run, and a multi-worker run cannot resume (workers other "
            "than the chief would restart from step 0). Choose a new --output-dir, or "
            "resume without --distribution multi-worker."
        )
    strategy = _MultiWorkerMirroredStrategy()
    if _is_chief(tf_config):
        return strategy, run_dir
    task = tf_config["task"]
    worker_dir = Path(tempfile.mkdtemp(prefix=f"keras_transformer_{task['type']}{task['index']}_"))
    atexit.register(shutil.rmtree, worker_dir, ignore_errors=True)
    return strategy, worker_dir
