"""Training a translation model into a run directory: resume after an
interruption, continue a finished run, fine-tune from another run, and pick
the final model by validation BLEU."""

import dataclasses
import logging
import math
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from keras_transformer.checks import check_number, check_positive_int
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
    token_counts,
    train_vocabulary,
)
from keras_transformer.files import atomic_file
from keras_transformer.models import Seq2SeqTransformer, build_seq2seq_transformer
from keras_transformer.training import (
    MaskedSparseCategoricalCrossentropy,
    dtype_policy_scope,
    resolve_dtype_policy,
    transformer_adam,
)
from keras_transformer.translation.backup import (
    STATE_FILE,
    EpochCheckpoint,
    TrainingBackup,
    stop_on_signals,
)
from keras_transformer.translation.config import TranslationConfig, resolve_config
from keras_transformer.translation.distribution import distribute_run
from keras_transformer.translation.run_directory import (
    BACKUP_DIR,
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    CHECKPOINT_PATTERN,
    CONFIG_FILE,
    LOG_DIR,
    MODEL_FILE,
    VOCABULARY_FILES,
    Run,
    decoding_model,
    load_run,
    read_run_config,
    write_run_config,
    write_test_split,
)
from keras_transformer.translation.summaries import optimizer_step, summary_callback
from keras_transformer.translation.translator import Translator
from keras_transformer.translation.validation import (
    Evaluation,
    Throughput,
    TimeLimit,
    ValidationBleu,
    best_evaluation,
    final_model_record,
    read_training_file,
    training_summary,
    validation_sample,
    write_training_file,
)

Pair = tuple[str, str]

# Fields that may differ between an interrupted run and its resumption:
# the epoch count, the backup frequency, and the vocabulary sizes (upper
# bounds when requested, actual sizes once written).
_RESUMABLE_CHANGES = (
    "epochs", "backup_steps", "source_vocabulary_size", "target_vocabulary_size"
)
# What a fine-tuned run must share with the run it starts from.
_FINE_TUNING_FIELDS = (
    "num_layers", "hidden_dim", "num_heads", "intermediate_dim", "dropout", "normalize_first",
    "tie_embeddings", "position_encoding", "max_sequence_length", "tokenizer", "lowercase",
)
# Validation sentences greedy-decoded for BLEU at every evaluation, by default.
VALIDATION_BLEU_SENTENCES = 500


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite and `TerminateOnNaN` stopped training."""


def _held_out(name: str, path: str | os.PathLike | None, direction: str) -> list[Pair] | None:
    """The pairs of --validation-data or --test-data, None when not given."""
    if path is None:
        return None
    try:
        return load_corpus(path, direction)
    except DataError as error:
        raise DataError(f"{name}_data (--{name}-data): {error}") from None


def load_splits(
    data: str | os.PathLike | None,
    direction: str,
    seed: int,
    validation_data: str | os.PathLike | None = None,
    test_data: str | os.PathLike | None = None,
) -> dict[str, list[Pair]]:
    """Train, validation and test pairs.

    Training pairs come from `load_corpus(data)`, or from the embedded
    corpus when `data` is None (French -> English, or reversed for
    "en-fr"). `validation_data` and `test_data`, in the same formats, are
    the validation and test sets; a set not given is split off the training
    data over distinct source sentences (10% each: 80/10/10 when neither is
    given).

    Args:
        data: a corpus for `load_corpus`, or None.
        direction: "source-target" language codes.
        seed: the seed of the split.
        validation_data, test_data: corpora for `load_corpus`, or None.

    Returns:
        `{"train": [...], "validation": [...], "test": [...]}`.

    Raises:
        DataError: a corpus is missing, empty or malformed (the message names
            the argument, the file and the line).
        ValueError: a bad direction, or one the embedded corpus lacks.

    Example:
    >>> splits = load_splits("multi30k/train", "fr-en", 1234,
    ...     validation_data="multi30k/val")  # doctest: +SKIP
    >>> len(splits["validation"])  # doctest: +SKIP
    1014
    """
    source_language, target_language = parse_direction(direction)
    given = {
        "validation": _held_out("validation", validation_data, direction),
        "test": _held_out("test", test_data, direction),
    }
    if data is not None:
        splits = split_pairs(
            load_corpus(data, direction),
            validation_fraction=0.0 if given["validation"] else 0.1,
            test_fraction=0.0 if given["test"] else 0.1,
            seed=seed,
        )
    elif {source_language, target_language} != {"fr", "en"}:
        raise ValueError(
            f"The embedded corpus is French-English; received direction {direction!r}. "
            "Use 'fr-en' or 'en-fr', or pass --data."
        )
    else:
        splits = default_splits(seed=seed)
        if source_language == "en":
            splits = {name: [(t, s) for s, t in pairs] for name, pairs in splits.items()}
    splits.update({name: pairs for name, pairs in given.items() if pairs is not None})
    return splits


def _prepare_run_dir(
    run_dir: Path, config: TranslationConfig, direction: str
) -> TranslationConfig | None:
    """Creates the run directory; returns the config of the run it holds, to
    resume or continue, or None.

    Raises ValueError when it holds a run with another config or direction,
    or a finished run without the backup to continue it.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        return None
    previous, previous_direction = read_run_config(run_dir)
    changed = sorted(
        name
        for name, value in dataclasses.asdict(config).items()
        if name not in _RESUMABLE_CHANGES and getattr(previous, name) != value
        and not (name == "dtype_policy" and value == "auto")  # the run's own resolution
    )
    if previous_direction != direction:
        changed.append("direction")
    if changed:
        raise ValueError(
            f"{run_dir} holds a run with a different {', '.join(changed)}; resuming needs "
            "the same settings. Choose a new --output-dir or delete the old run."
        )
    if (run_dir / MODEL_FILE).is_file() and not (run_dir / BACKUP_DIR / STATE_FILE).is_file():
        raise ValueError(
            f"{run_dir} holds a finished run without its training state "
            f"({BACKUP_DIR}/{STATE_FILE}, which runs keep since they can be continued), so "
            "it cannot be continued. Train into a new --output-dir, or fine-tune from it "
            f"with --init-from {run_dir}."
        )
    return previous


def _fine_tuning_config(config: TranslationConfig, run: Run) -> TranslationConfig:
    """`config` with the vocabulary sizes of the run to fine-tune from;
    ValueError unless they share the model sizes and the tokenizer."""
    different = [
        f"{name}={getattr(run.config, name)!r} there, {getattr(config, name)!r} here"
        for name in _FINE_TUNING_FIELDS
        if getattr(run.config, name) != getattr(config, name)
    ]
    if different:
        raise ValueError(
            f"--init-from {run.path}: fine-tuning needs the model sizes and tokenizer of "
            f"that run; received {'; '.join(different)}. Leave out --config to use its "
            "config, or change only the training fields (epochs, learning rate, ...)."
        )
    return dataclasses.replace(
        config,
        source_vocabulary_size=run.config.source_vocabulary_size,
        target_vocabulary_size=run.config.target_vocabulary_size,
    )


def _vocabularies(
    run_dir: Path,
    train_pairs: list[Pair],
    config: TranslationConfig,
    resume: bool,
    init: Run | None,
):
    """The run's vocabularies (WordPiece tokens or SentencePiece models, see
    `config.tokenizer`): read back when resuming, copied from the run to
    fine-tune from, else learned; saved in the run directory."""
    paths = [run_dir / name for name in VOCABULARY_FILES[config.tokenizer]]
    if resume and all(path.is_file() for path in paths):
        return [load_vocabulary_file(config.tokenizer, path) for path in paths]
    vocabularies = []
    for side, size, path in zip(
        (0, 1), (config.source_vocabulary_size, config.target_vocabulary_size), paths
    ):
        if init is not None:
            vocabulary = (init.source_vocabulary, init.target_vocabulary)[side]
        else:
            texts = [pair[side] for pair in train_pairs]
            vocabulary = train_vocabulary(
                config.tokenizer, texts, size, lowercase=config.lowercase
            )
        save_vocabulary_file(config.tokenizer, vocabulary, path)
        vocabularies.append(vocabulary)
    return vocabularies


def _build_model(config: TranslationConfig) -> Seq2SeqTransformer:
    """The compiled model of a config (a `tf.distribute` strategy scope can
    wrap this call: it creates every variable of the model and optimizer)."""
    with dtype_policy_scope(config.dtype_policy):  # every layer's, saved with it
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
    return model


def _datasets(
    splits, source_tokenizer, target_tokenizer, config, shuffle: bool = True
) -> dict[str, tf.data.Dataset]:
    batching = (
        {"batch_tokens": config.batch_tokens}
        if config.batch_tokens
        else {"batch_size": config.batch_size}
    )
    return {
        name: make_dataset(
            splits[name],
            source_tokenizer,
            target_tokenizer,
            **batching,
            max_sequence_length=config.max_sequence_length,
            shuffle=shuffle and name == "train",
            seed=config.seed,
        )
        for name in ("train", "validation")
    }


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


def _write_final_model(
    run_dir: Path, model: Seq2SeqTransformer, evaluations: list[Evaluation]
) -> Seq2SeqTransformer:
    """Writes model.keras: the best checkpoint by validation BLEU, or the
    model as training left it when nothing was evaluated; returns it."""
    if best_evaluation(evaluations) is None:
        with atomic_file(run_dir / MODEL_FILE) as temporary:
            model.save(temporary)
        return model
    with atomic_file(run_dir / MODEL_FILE) as temporary:
        shutil.copyfile(run_dir / CHECKPOINT_DIR / BEST_CHECKPOINT, temporary)
    return keras.saving.load_model(run_dir / MODEL_FILE)


def _check_options(validation_steps, validation_bleu_sentences, early_stopping, max_time):
    check_positive_int("validation_steps", validation_steps, none_means="epoch ends only")
    check_positive_int(
        "validation_bleu_sentences", validation_bleu_sentences, none_means="all of them"
    )
    check_positive_int("early_stopping", early_stopping, none_means="no early stopping")
    if max_time is not None:
        check_number("max_time", max_time, positive=True, meaning="minutes")


def train(
    config: TranslationConfig | str | None,
    output_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    direction: str | None = None,
    epochs: int | None = None,
    *,
    batch_tokens: int | None = None,
    validation_data: str | os.PathLike | None = None,
    test_data: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    validation_steps: int | None = None,
    validation_bleu_sentences: int | None = VALIDATION_BLEU_SENTENCES,
    early_stopping: int | None = None,
    max_time: float | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: str | int = "auto",
    distribution: str = "none",
) -> Translator:
    """Trains a translation model and writes a complete run directory.

    Learns WordPiece vocabularies or SentencePiece models (the config's
    `tokenizer`) on the training split, builds the model
    from the config, trains it with the paper's optimizer, schedule and
    label smoothing, checkpoints every epoch, and saves the final model.
    Batches hold `config.batch_size` sentences, or about
    `config.batch_tokens` tokens (see `make_dataset`); every epoch's
    padding fraction and non-padding target tokens per second are logged.

    Validation BLEU (sacrebleu, greedy decoding of a fixed seeded sample of
    the validation set) is computed at every epoch end and every
    `validation_steps` steps; the best model so far is kept in
    RUN_DIR/checkpoints/best.keras, and model.keras ends as that model
    (the last one only when nothing was evaluated). `training_summary`
    says which, and why training stopped.

    The training state is backed up every `config.backup_steps` steps and
    after every epoch; SIGINT or SIGTERM backs it up after the current step
    and stops. Re-running the same call after an interruption, even a
    SIGKILL, resumes from the last backup and, as epoch k always reads the
    k-th pass of the seeded shuffle and the backup holds the weights, the
    optimizer and dropout states, ends with the weights of an uninterrupted
    run. The backup is kept when training ends: re-running a finished run
    with more `epochs` continues it (weights, optimizer and schedule), and
    re-running it unchanged does nothing. Every file but the TensorBoard
    logs is written to a temporary file, then renamed. See `run_directory`
    for the files written.

    Args:
        config: a `TranslationConfig`, a recipe name ("tiny", "small",
            "base") or a JSON file (see `resolve_config`); None with
            `init_from` takes that run's config.
        output_dir: the run directory.
        data: a corpus for `load_corpus`; None trains on the embedded
            generated French-English corpus.
        direction: "source-target" language codes; default that of
            `init_from`, else "fr-en".
        epochs: overrides `config.epochs`.
        batch_tokens: overrides `config.batch_tokens` (batches of about
            this many tokens instead of `batch_size` sentences).
        validation_data, test_data: the validation and test sets, in the
            formats of `data`; those not given are split off `data` (see
            `load_splits`).
        init_from: a finished run directory to fine-tune from: the new run
            starts from its weights with its vocabularies (same model sizes
            and tokenizer), and a new optimizer and schedule.
        validation_steps: steps between two validation BLEU evaluations
            within an epoch; None evaluates at epoch ends only.
        validation_bleu_sentences: validation pairs to decode for BLEU (a
            sample drawn with `config.seed`); None decodes them all.
        early_stopping: stop after this many evaluations in a row without
            a better BLEU; None never stops early.
        max_time: minutes of training (from its first step, evaluations
            included) after which it stops, after the current step, backed
            up; re-running the call resumes it.
        callbacks: more Keras callbacks, run after the run's own.
        verbose: passed to `model.fit` (progress bars by default).
        distribution: "none", "mirrored" or "multi-worker" (`TF_CONFIG`):
            the model is built and trained under that `tf.distribute`
            strategy; see `translation.distribution` for the run directory
            and resuming under "multi-worker".

    Returns:
        A `Translator` of the final model (model.keras).

    Raises:
        DataError, ValueError: bad data, direction, config or option, a
            run directory holding a different run, or a run to fine-tune
            from with other model sizes.
        FileNotFoundError: `init_from` is not a finished run directory.
        TrainingDivergedError: the loss became NaN or infinite.
        TrainingInterrupted: a SIGINT or SIGTERM stopped training (a
            `KeyboardInterrupt`).

    Example:
    >>> translator = train("tiny", "runs/embedded")  # doctest: +SKIP
    >>> translator.translate(["Je suis étudiant."])  # doctest: +SKIP
    ['I am a student.']
    >>> train("small", "runs/multi30k", "multi30k/train",
    ...       validation_data="multi30k/val", test_data="multi30k/test_2016_flickr",
    ...       max_time=25)  # doctest: +SKIP
    """
    _check_options(validation_steps, validation_bleu_sentences, early_stopping, max_time)
    init = load_run(init_from) if init_from is not None else None
    if config is None:
        if init is None:
            raise ValueError(
                "`config` is None: pass a recipe name, a JSON file or a `TranslationConfig` "
                "(None takes the config of `init_from`, which was not given either)."
            )
        config = init.config
    elif not isinstance(config, TranslationConfig):
        config = resolve_config(config)
    if epochs is not None:
        check_positive_int("epochs", epochs)
        config = dataclasses.replace(config, epochs=epochs)
    if batch_tokens is not None:
        config = dataclasses.replace(config, batch_tokens=batch_tokens)
    if init is not None:
        config = _fine_tuning_config(config, init)
        direction = init.direction if direction is None else direction
        if direction != init.direction:
            raise ValueError(
                f"--init-from {init.path} translates {init.direction}; received direction "
                f"{direction!r}. Fine-tuning keeps the direction."
            )
    direction = "fr-en" if direction is None else direction
    strategy, run_dir = distribute_run(distribution, output_dir)
    splits = load_splits(data, direction, config.seed, validation_data, test_data)
    if not splits["validation"] or not splits["test"]:
        raise DataError(f"{data}: too few sentence pairs to hold out validation and test splits.")
    previous = _prepare_run_dir(run_dir, config, direction)
    config = dataclasses.replace(  # "auto" resolves once, on the machine that starts the run
        config,
        dtype_policy=previous.dtype_policy
        if previous is not None and config.dtype_policy == "auto"
        else resolve_dtype_policy(config.dtype_policy),
    )
    keras.utils.set_random_seed(config.seed)

    source_vocabulary, target_vocabulary = _vocabularies(
        run_dir, splits["train"], config, previous is not None, init
    )
    source_tokenizer = make_tokenizer(config.tokenizer, source_vocabulary, config.lowercase)
    target_tokenizer = make_tokenizer(config.tokenizer, target_vocabulary, config.lowercase)
    config = dataclasses.replace(
        config,
        source_vocabulary_size=source_tokenizer.vocabulary_size(),
        target_vocabulary_size=target_tokenizer.vocabulary_size(),
    )

    datasets = _datasets(splits, source_tokenizer, target_tokenizer, config)
    with strategy.scope():
        model = _build_model(config)
    # Epoch k reads the k-th pass of the seeded shuffle: counting the batches
    # is pass 0, and `fit` makes one iterator over the repeated dataset, so a
    # resumed run that skips the steps already taken reads the same batches.
    # Under a strategy, `fit` reads a batch of pass 0 itself before training
    # (Keras's symbolic build), so the batches of an unshuffled copy are
    # counted instead: bucketing makes as many batches in any order.
    counted = datasets["train"]
    if distribution != "none":
        counted = _datasets(
            splits, source_tokenizer, target_tokenizer, config, shuffle=False
        )["train"]
    counts = token_counts(counted)
    steps_per_epoch = counts["batches"]
    logging.info(
        "Training on %d pairs in %d batches an epoch (%.1f%% padding); %s vocabularies of "
        "%d source and %d target tokens.",
        len(splits["train"]), steps_per_epoch, 100 * counts["padding"] / counts["positions"],
        config.tokenizer, config.source_vocabulary_size, config.target_vocabulary_size,
    )
    # A known length spares Keras's "input ran out of data" warning.
    validation = datasets["validation"].apply(
        tf.data.experimental.assert_cardinality(token_counts(datasets["validation"])["batches"])
    )
    backup = TrainingBackup(run_dir / BACKUP_DIR, steps_per_epoch, config.backup_steps)
    last_epoch = config.epochs
    if previous is not None and backup.restore(model):
        if backup.stop_reason == "early_stopping" and config.epochs <= previous.epochs:
            last_epoch = backup.epoch  # it stays stopped unless given more epochs
        if backup.epoch >= last_epoch and (run_dir / MODEL_FILE).is_file():
            logging.info("%s has finished: %s", run_dir, training_summary(run_dir))
            return Translator.from_run_dir(run_dir)
        logging.info("Resuming at step %d of epoch %d.", backup.step, backup.epoch + 1)
    elif init is not None:
        model.set_weights(init.model.get_weights())
        logging.info("Fine-tuning from %s.", init.path)
    write_run_config(run_dir, config, direction)
    write_test_split(run_dir, splits["test"])
    # A run that stopped early and stays stopped still writes its final model.
    stayed_stopped = "early_stopping" if last_epoch < config.epochs else None

    translator = Translator(model, config, source_vocabulary, target_vocabulary, direction)
    validator = ValidationBleu(
        translator,
        validation_sample(splits["validation"], validation_bleu_sentences, config.seed),
        run_dir,
        backup,
        str(run_dir / LOG_DIR),
        every_steps=validation_steps,
        patience=early_stopping,
    )
    (run_dir / CHECKPOINT_DIR).mkdir(exist_ok=True)
    run_callbacks = [
        Throughput(counts),
        EpochCheckpoint(str(run_dir / CHECKPOINT_DIR / CHECKPOINT_PATTERN), backup),
        validator,
        *([TimeLimit(max_time * 60, backup)] if max_time is not None else []),
        summary_callback(str(run_dir / LOG_DIR)),
        keras.callbacks.TerminateOnNaN(),
        backup,
    ]
    with stop_on_signals(backup):
        history = model.fit(
            datasets["train"].repeat().skip(backup.epoch * steps_per_epoch + backup.step),
            steps_per_epoch=steps_per_epoch,
            validation_data=validation,
            initial_epoch=backup.epoch,
            epochs=last_epoch,
            shuffle=False,  # the dataset reshuffles itself every epoch
            callbacks=run_callbacks + list(callbacks or []),
            verbose=verbose,
        )
    losses = history.history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise TrainingDivergedError(_divergence_message(run_dir, history.epoch[-1] + 1))
    final = _write_final_model(run_dir, model, validator.evaluations)
    record = read_training_file(run_dir)
    record["stopped"] = backup.stop_reason or stayed_stopped or "epochs"
    record["model"] = final_model_record(
        backup, validator.evaluations, optimizer_step(model)
    )
    write_training_file(run_dir, record)
    logging.info(training_summary(run_dir))
    return Translator(
        decoding_model(final), config, source_vocabulary, target_vocabulary, direction,
        run_dir=run_dir,
    )
