"""Checkpoint averaging: the mean of the weights of a run's last epoch
checkpoints, as fairseq's `scripts/average_checkpoints.py`.

Vaswani et al. (2017, section 6.1) averaged the last 5 (base) or 20 (big)
checkpoints; the mean of nearby points of one run lies in the same basin
and usually scores a little higher than any of them.
"""

import os
from pathlib import Path

import keras
import numpy as np

from keras_transformer.checks import check_positive_int
from keras_transformer.files import atomic_file
from keras_transformer.models import Seq2SeqTransformer, check_seq2seq_model
from keras_transformer.translation.run_directory import CHECKPOINT_DIR, decoding_model, load_run
from keras_transformer.translation.translator import Translator


def average_models(paths: list[str | os.PathLike]) -> Seq2SeqTransformer:
    """A model whose every weight is the elementwise mean of that weight in
    the `.keras` models at `paths` (same architecture), computed in float64.

    The first model is loaded uncompiled and gets the means; K identical
    models give back exactly their weights.

    Args:
        paths: `.keras` files of `Seq2SeqTransformer`s of one architecture.

    Returns:
        The averaged `Seq2SeqTransformer`.

    Raises:
        ValueError: no paths, or models whose weights differ in number or shape.

    Example:
    >>> model = average_models(["runs/a/checkpoints/epoch_009.keras",
    ...                         "runs/a/checkpoints/epoch_010.keras"])  # doctest: +SKIP
    """
    if not paths:
        raise ValueError("`paths` must name at least one .keras model. Received none.")
    models = [
        check_seq2seq_model(keras.saving.load_model(path, compile=False), "average_models")
        for path in paths
    ]
    averaged = models[0]
    for path, model in zip(paths, models):
        shapes = [tuple(weight.shape) for weight in model.weights]
        expected = [tuple(weight.shape) for weight in averaged.weights]
        if shapes != expected:
            raise ValueError(
                f"{path} has weights of other shapes than {paths[0]} ({len(shapes)} weights "
                f"against {len(expected)}); only checkpoints of one architecture average."
            )
    for index, weight in enumerate(averaged.weights):
        values = [keras.ops.convert_to_numpy(model.weights[index]) for model in models]
        mean = np.mean(np.stack(values).astype("float64"), axis=0)
        weight.assign(mean.astype(values[0].dtype))
    return averaged


def last_checkpoints(run_dir: str | os.PathLike, last: int) -> list[Path]:
    """The `last` latest epoch checkpoints of a run, oldest first.

    Raises:
        ValueError: the run holds fewer epoch checkpoints.
    """
    check_positive_int("last", last)
    checkpoints = sorted((Path(run_dir) / CHECKPOINT_DIR).glob("epoch_*.keras"))
    if len(checkpoints) < last:
        raise ValueError(
            f"{Path(run_dir) / CHECKPOINT_DIR} holds {len(checkpoints)} epoch checkpoint(s); "
            f"averaging the last {last} needs at least {last}. Lower --last or train more "
            "epochs."
        )
    return checkpoints[-last:]


def average_run(
    run_dir: str | os.PathLike, last: int, output: str | os.PathLike | None = None
) -> tuple[Translator, list[Path], Path]:
    """Averages the last `last` epoch checkpoints of a finished run and
    writes the model, atomically.

    Args:
        run_dir: a finished run directory.
        last: how many of the latest epoch checkpoints to average.
        output: the `.keras` path to write; default RUN_DIR/averaged.keras.
            RUN_DIR/model.keras makes the average the run's model.

    Returns:
        `(translator, checkpoints, output)`: a `Translator` of the averaged
        model with the run's vocabularies and test split, the checkpoints
        averaged, and the path written.

    Example:
    >>> translator, _, _ = average_run("runs/multi30k", last=5)  # doctest: +SKIP
    >>> evaluate(translator).bleu  # doctest: +SKIP
    """
    run = load_run(run_dir)
    checkpoints = last_checkpoints(run.path, last)
    output = run.path / "averaged.keras" if output is None else Path(output)
    if output.suffix != ".keras":
        raise ValueError(f"--output must be a .keras file; received {str(output)!r}.")
    model = average_models(checkpoints)
    with atomic_file(output) as temporary:
        model.save(temporary)
    translator = Translator(
        decoding_model(model), run.config, run.source_vocabulary, run.target_vocabulary,
        run.direction, run_dir=run.path,
    )
    return translator, checkpoints, output
