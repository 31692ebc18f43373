"""Training a translation model into a run directory, with resume after interruption."""

import dataclasses
import logging
import math
import os
from pathlib import Path

import keras
import tensorflow as tf

from keras_transformer.checks import check_positive_int
from keras_transformer.data import (
    DataError,
    default_splits,
    load_corpus,
    load_vocabulary_file,
    make_dataset,
    make_tokenizer,
    parse_direction,
    save_vocabulary_file,
    split_pairs,
    train_vocabulary,
)
from keras_transformer.files import atomic_file
from keras_transformer.models import build_seq2seq_transformer
from keras_transformer.training import (
    MaskedSparseCategoricalCrossentropy,
    transformer_adam,
)
from keras_transformer.translation.backup import (
    EpochCheckpoint,
    TrainingBackup,
    stop_on_signals,
)
from keras_transformer.translation.config import TranslationConfig, resolve_config
from keras_transformer.translation.distribution import distribute_run
from keras_transformer.translation.run_directory import (
    BACKUP_DIR,
    CHECKPOINT_DIR,
    CHECKPOINT_PATTERN,
    CONFIG_FILE,
    LOG_DIR,
    MODEL_FILE,
    VOCABULARY_FILES,
    read_run_config,
    write_run_config,
    write_test_split,
)
from keras_transformer.translation.summaries import EpochSummaries
from keras_transformer.translation.translator import Translator

Pair = tuple[str, str]

# Fields that may differ between an interrupted run and its resumption:
# the epoch count, the backup frequency, and the vocabulary sizes (upper
# bounds when requested, actual sizes once written).
_RESUMABLE_CHANGES = (
    "epochs", "backup_steps", "source_vocabulary_size", "target_vocabulary_size"
)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite and `TerminateOnNaN` stopped training."""


def load_splits(data: str | os.PathLike | None, direction: str, seed: int) -> dict[str, list[Pair]]:
    """Train, validation and test pairs: the embedded corpus when `data` is None
    (French -> English, or reversed for "en-fr"), else `load_corpus(data)`
    split 80/10/10 over distinct source sentences."""
    source_language, target_language = parse_direction(direction)
    if data is not None:
        return split_pairs(load_corpus(data, direction), seed=seed)
    if {source_language, target_language} != {"fr", "en"}:
        raise ValueError(
            f"The embedded corpus is French-English; received direction {direction!r}. "
            "Use 'fr-en' or 'en-fr', or pass --data."
        )
    splits = default_splits(seed=seed)
    if source_language == "en":
        splits = {name: [(t, s) for s, t in pairs] for name, pairs in splits.items()}
    return splits


def _prepare_run_dir(run_dir: Path, config: TranslationConfig, direction: str) -> bool:
    """Creates the run directory; returns whether it holds a run to resume.

    Raises ValueError when it holds a run with another config or direction.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        return False
    previous, previous_direction = read_run_config(run_dir)
    changed = sorted(
        name
        for name, value in dataclasses.asdict(config).items()
        if name not in _RESUMABLE_CHANGES and getattr(previous, name) != value
    )
    if previous_direction != direction:
        changed.append("direction")
    if changed:
        raise ValueError(
            f"{run_dir} holds a run with a different {', '.join(changed)}; resuming needs "
            "the same settings. Choose a new --output-dir or delete the old run."
        )
    return True


def _vocabularies(run_dir: Path, train_pairs: list[Pair], config: TranslationConfig, resume: bool):
    """The run's vocabularies (WordPiece tokens or SentencePiece models, see
    `config.tokenizer`): read back when resuming, else learned and saved."""
    paths = [run_dir / name for name in VOCABULARY_FILES[config.tokenizer]]
    if resume and all(path.is_file() for path in paths):
        return [load_vocabulary_file(config.tokenizer, path) for path in paths]
    vocabularies = []
    for side, size, path in zip(
        (0, 1), (config.source_vocabulary_size, config.target_vocabulary_size), paths
    ):
        texts = [pair[side] for pair in train_pairs]
        vocabulary = train_vocabulary(config.tokenizer, texts, size, lowercase=config.lowercase)
        save_vocabulary_file(config.tokenizer, vocabulary, path)
        vocabularies.append(vocabulary)
    return vocabularies


def _callbacks(run_dir: Path, backup: TrainingBackup) -> list[keras.callbacks.Callback]:
    (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
    return [
        EpochCheckpoint(str(run_dir / CHECKPOINT_DIR / CHECKPOINT_PATTERN)),
        EpochSummaries(str(run_dir / LOG_DIR)),
        keras.callbacks.TerminateOnNaN(),
        backup,
    ]


def _count_batches(dataset: tf.data.Dataset) -> int:
    return int(dataset.reduce(0, lambda count, _: count + 1))


def _divergence_message(run_dir: Path, epoch: int) -> str:
    checkpoints = sorted((run_dir / CHECKPOINT_DIR).glob("epoch_*.keras"))
    kept = (
        f"the last good checkpoint, {checkpoints[-1]}, is kept"
        if checkpoints
        else "no epoch finished before it, so there is no checkpoint"
    )
    return (
        f"Training stopped on a NaN or infinite loss (TerminateOnNaN) in epoch {epoch}; "
        f"{run_dir / MODEL_FILE} was not written and {kept}. Lower "
        "learning_rate_scale or raise warmup_steps, and train into a new --output-dir."
    )


def train(
    config: TranslationConfig | str,
    output_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    direction: str = "fr-en",
    epochs: int | None = None,
    *,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: str | int = "auto",
    distribution: str = "none",
) -> Translator:
    """Trains a translation model and writes a complete run directory.

    Learns WordPiece vocabularies or SentencePiece models (the config's
    `tokenizer`) on the training split, builds the model
    from the config, trains it with the paper's optimizer, schedule and
    label smoothing, checkpoints every epoch, and saves the final model.
    The training state is backed up every `config.backup_steps` steps and
    after every epoch; SIGINT or SIGTERM backs it up after the current step
    and stops. Re-running the same call after an interruption, even a
    SIGKILL, resumes from the last backup and, as epoch k always reads the
    k-th pass of the seeded shuffle and the backup holds the weights, the
    optimizer and dropout states, ends with the weights of an uninterrupted
    run. Every file but the TensorBoard logs is written to a temporary file,
    then renamed. See `run_directory` for the files written.

    Args:
        config: a `TranslationConfig`, a recipe name ("tiny", "small",
            "base") or a JSON file (see `resolve_config`).
        output_dir: the run directory.
        data: a corpus for `load_corpus`; None trains on the embedded
            generated French-English corpus.
        direction: "source-target" language codes.
        epochs: overrides `config.epochs`.
        callbacks: more Keras callbacks, run after the run's own.
        verbose: passed to `model.fit` (progress bars by default).
        distribution: "none", "mirrored" or "multi-worker" (`TF_CONFIG`):
            the model is built and trained under that `tf.distribute`
            strategy; see `translation.distribution` for the run directory
            and resuming under "multi-worker".

    Returns:
        A `Translator` of the trained model.

    Raises:
        DataError, ValueError: bad data, direction or config, or a run
            directory holding a different run.
        TrainingDivergedError: the loss became NaN or infinite.
        TrainingInterrupted: a SIGINT or SIGTERM stopped training (a
            `KeyboardInterrupt`).

    Example:
    >>> translator = train("tiny", "runs/embedded")  # doctest: +SKIP
    >>> translator.translate(["Je suis étudiant."])  # doctest: +SKIP
    ['I am a student.']
    """
    if not isinstance(config, TranslationConfig):
        config = resolve_config(config)
    if epochs is not None:
        check_positive_int("epochs", epochs)
        config = dataclasses.replace(config, epochs=epochs)
    strategy, run_dir = distribute_run(distribution, output_dir)
    splits = load_splits(data, direction, config.seed)
    if not splits["validation"] or not splits["test"]:
        raise DataError(f"{data}: too few sentence pairs to hold out validation and test splits.")
    resume = _prepare_run_dir(run_dir, config, direction)
    keras.utils.set_random_seed(config.seed)

    source_vocabulary, target_vocabulary = _vocabularies(run_dir, splits["train"], config, resume)
    source_tokenizer = make_tokenizer(config.tokenizer, source_vocabulary, config.lowercase)
    target_tokenizer = make_tokenizer(config.tokenizer, target_vocabulary, config.lowercase)
    config = dataclasses.replace(
        config,
        source_vocabulary_size=source_tokenizer.vocabulary_size(),
        target_vocabulary_size=target_tokenizer.vocabulary_size(),
    )
    write_run_config(run_dir, config, direction)
    write_test_split(run_dir, splits["test"])
    logging.info(
        "Training on %d pairs; %s vocabularies of %d source and %d target tokens.",
        len(splits["train"]), config.tokenizer, config.source_vocabulary_size,
        config.target_vocabulary_size,
    )

    datasets = {
        name: make_dataset(
            splits[name],
            source_tokenizer,
            target_tokenizer,
            batch_size=config.batch_size,
            max_sequence_length=config.max_sequence_length,
            shuffle=name == "train",
            seed=config.seed,
        )
        for name in ("train", "validation")
    }
    with strategy.scope():
        model = build_seq2seq_transformer(
            config.source_vocabulary_size, config.target_vocabulary_size, **config.model_kwargs()
        )
        model.compile(
            optimizer=transformer_adam(**config.optimizer_kwargs()),
            loss=MaskedSparseCategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            # Bucketed batches come in many (S, T) shapes and XLA compiles the
            # train step again for each one (~20 s per shape for the small model
            # on a CPU core); without XLA, tf.function relaxes to one graph for
            # all shapes. See docs/performance.md.
            jit_compile=False,
        )
    # Epoch k reads the k-th pass of the seeded shuffle: counting the batches
    # is pass 0, and `fit` makes one iterator over the repeated dataset, so a
    # resumed run that skips the steps already taken reads the same batches.
    # Under a strategy, `fit` reads a batch of pass 0 itself before training
    # (Keras's symbolic build), so the batches of an unshuffled copy are
    # counted instead: bucketing makes as many batches in any order.
    counted = datasets["train"]
    if distribution != "none":
        counted = make_dataset(
            splits["train"], source_tokenizer, target_tokenizer,
            batch_size=config.batch_size, max_sequence_length=config.max_sequence_length,
        )
    steps_per_epoch = _count_batches(counted)
    # A known length spares Keras's "input ran out of data" warning.
    validation = datasets["validation"].apply(
        tf.data.experimental.assert_cardinality(_count_batches(datasets["validation"]))
    )
    backup = TrainingBackup(run_dir / BACKUP_DIR, steps_per_epoch, config.backup_steps)
    if resume and backup.restore(model):
        logging.info("Resuming at step %d of epoch %d.", backup.step, backup.epoch + 1)
    with stop_on_signals(backup):
        history = model.fit(
            datasets["train"].repeat().skip(backup.epoch * steps_per_epoch + backup.step),
            steps_per_epoch=steps_per_epoch,
            validation_data=validation,
            initial_epoch=backup.epoch,
            epochs=config.epochs,
            shuffle=False,  # the dataset reshuffles itself every epoch
            callbacks=_callbacks(run_dir, backup) + list(callbacks or []),
            verbose=verbose,
        )
    losses = history.history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise TrainingDivergedError(_divergence_message(run_dir, history.epoch[-1] + 1))
    with atomic_file(run_dir / MODEL_FILE) as temporary:
        model.save(temporary)
    backup.delete()
    return Translator(
        model, config, source_vocabulary, target_vocabulary, direction, run_dir=run_dir
    )

