"""What a training run watches between steps: validation BLEU with the best
checkpoint and early stopping, a time limit, and its token throughput.

The callbacks here read and steer the run's `TrainingBackup`, so they go
before it in the callback list: they see an epoch's end before the backup
moves to the next epoch, and a stop they request is backed up after the
current step.
"""

import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import sacrebleu
import tensorflow as tf

from keras_transformer.files import atomic_file, write_file_atomic
from keras_transformer.translation.backup import TrainingBackup
from keras_transformer.translation.run_directory import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    MODEL_FILE,
    TRAINING_FILE,
)
from keras_transformer.translation.summaries import SCALAR_METADATA, optimizer_step
from keras_transformer.translation.translator import Translator

Pair = tuple[str, str]

# Why training stopped, as `training.json` names it, and how
# `training_summary` says it.
STOP_REASONS = {
    "epochs": "ran to the end of epoch {epoch}, step {step}",
    "max_time": "stopped at the time limit at step {step}, in epoch {epoch}",
    "early_stopping": (
        "stopped early, validation BLEU no longer improving, at step {step}, in epoch {epoch}"
    ),
}


def validation_sample(pairs: list[Pair], size: int | None, seed: int) -> list[Pair]:
    """`size` pairs drawn with `seed`, in corpus order; all of them when `size`
    is None or at least their number."""
    if size is None or size >= len(pairs):
        return list(pairs)
    rows = sorted(random.Random(seed).sample(range(len(pairs)), size))
    return [pairs[row] for row in rows]


@contextlib.contextmanager
def moving_average_weights(model: keras.Model) -> Iterator[None]:
    """Puts the optimizer's moving average of the weights (`use_ema`) into
    the model while active, then the training weights back; does nothing
    for an optimizer without one. The average is the model a run ends with
    (Keras's `finalize_variable_values`), so it is what validation scores."""
    optimizer = model.optimizer
    if not getattr(optimizer, "use_ema", False) or not optimizer.built:
        yield
        return
    # Keras keeps the averages in this list, one per trainable variable, as
    # `keras.callbacks.SwapEMAWeights` reads them.
    averages = optimizer._model_variables_moving_average
    pairs = [
        (variable, average)
        for variable, average in zip(model.trainable_variables, averages, strict=True)
        if average is not None
    ]
    saved = [keras.ops.convert_to_numpy(variable) for variable, _ in pairs]
    for variable, average in pairs:
        variable.assign(average)
    try:
        yield
    finally:
        for (variable, _), value in zip(pairs, saved):
            variable.assign(value)


@dataclasses.dataclass
class Evaluation:
    """One validation BLEU: after global step `step`, in 1-based epoch `epoch`,
    `seconds` after training began in the process that scored it (the
    evaluation's own time included; a resumed run counts from 0 again, and
    records written before this field have None)."""

    step: int
    epoch: int
    bleu: float
    seconds: float | None = None


def best_evaluation(evaluations: list[Evaluation]) -> Evaluation | None:
    """The evaluation of the highest BLEU; of equal ones, the latest (the
    more trained model)."""
    best = None
    for evaluation in evaluations:
        if best is None or evaluation.bleu >= best.bleu:
            best = evaluation
    return best


def evaluations_without_improvement(evaluations: list[Evaluation]) -> int:
    """How many evaluations came after the last one that beat every earlier one."""
    count, best = 0, None
    for evaluation in evaluations:
        if best is None or evaluation.bleu > best:
            count, best = 0, evaluation.bleu
        else:
            count += 1
    return count


def read_training_file(run_dir: Path) -> dict:
    """RUN_DIR/training.json, or an empty record for a new run."""
    path = run_dir / TRAINING_FILE
    if not path.is_file():
        return {"evaluations": [], "stopped": None, "model": None}
    return json.loads(path.read_text(encoding="utf-8"))


def write_training_file(run_dir: Path, record: dict) -> None:
    write_file_atomic(run_dir / TRAINING_FILE, json.dumps(record, indent=2) + "\n")


def training_summary(run_dir: str | os.PathLike) -> str:
    """One sentence on how a run's training ended and which model
    model.keras is, from RUN_DIR/training.json.

    Example:
    >>> training_summary("runs/multi30k")  # doctest: +SKIP
    'Training stopped at the time limit at step 5200, in epoch 12; model.keras is the
    best by validation BLEU: step 4800 (epoch 11), BLEU 35.12.'
    """
    record = read_training_file(Path(run_dir))
    model = record.get("model")
    if model is None:
        return f"{Path(run_dir) / MODEL_FILE} has not been written."
    ended = STOP_REASONS[record["stopped"]].format(
        step=model["last_step"], epoch=model["last_epoch"]
    )
    if model["source"] == "best":
        chosen = (
            f"the best by validation BLEU: step {model['step']} (epoch {model['epoch']}), "
            f"BLEU {model['bleu']:.2f}"
        )
    else:
        chosen = "the last model (no validation BLEU was computed)"
    return f"Training {ended}; {MODEL_FILE} is {chosen}."


class ValidationBleu(keras.callbacks.Callback):
    """Greedy-decodes validation sentences, scores sacrebleu BLEU, keeps the
    best checkpoint and stops early.

    Runs every `every_steps` global steps (if given), at every epoch end,
    and when the time limit stops training mid-epoch (the model then is a
    candidate too; a signal or early stopping adds no evaluation). With a moving average
    of the weights (`use_ema`), the average is scored and saved. The model
    of the highest BLEU (ties: the later one) is written to
    RUN_DIR/checkpoints/best.keras, atomically; every score goes to
    RUN_DIR/training.json and, as the scalar "bleu" stepped by global step,
    to the TensorBoard logs `log_dir/validation`. After `patience`
    evaluations in a row that do not beat the best BLEU, asks `backup` to
    stop. Resuming reads training.json back, dropping the evaluations after
    the restored step, which the resumed run repeats.

    Args:
        translator: a `Translator` of the model being trained.
        pairs: the validation `(source, reference)` pairs to score.
        run_dir: the run directory.
        backup: the run's `TrainingBackup`, placed after this callback.
        log_dir: the TensorBoard log directory.
        every_steps: steps between two evaluations within an epoch; None
            evaluates at epoch ends only.
        patience: evaluations without improvement before stopping; None
            never stops.
    """

    def __init__(
        self,
        translator: Translator,
        pairs: list[Pair],
        run_dir: Path,
        backup: TrainingBackup,
        log_dir: str,
        every_steps: int | None = None,
        patience: int | None = None,
    ):
        super().__init__()
        self.translator = translator
        self.sources = [source for source, _ in pairs]
        self.references = [reference for _, reference in pairs]
        self.run_dir = run_dir
        self.backup = backup
        self.log_dir = log_dir
        self.every_steps = every_steps
        self.patience = patience
        self.evaluations = []
        self._writer = None
        self._started = time.monotonic()

    def on_train_begin(self, logs=None):
        self._started = time.monotonic()
        step = self._step()
        self.evaluations = [
            Evaluation(**values)
            for values in read_training_file(self.run_dir)["evaluations"]
            if values["step"] <= step
        ]

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self._step() % self.every_steps == 0:
            self.evaluate()

    def on_epoch_end(self, epoch, logs=None):
        evaluated = self.evaluations and self.evaluations[-1].step == self._step()
        stopped_on_time = self.backup.stop_reason == "max_time"
        if (self.backup.epoch_complete or stopped_on_time) and not evaluated:
            self.evaluate()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _step(self) -> int:
        return optimizer_step(self.model)

    def evaluate(self) -> Evaluation:
        """Scores the model now, records the score, and updates the best checkpoint."""
        with moving_average_weights(self.model):
            hypotheses = self.translator.translate(self.sources, beam_size=1)
            bleu = sacrebleu.corpus_bleu(hypotheses, [self.references]).score
            return self.record(bleu)

    def record(self, bleu: float) -> Evaluation:
        """Records a BLEU score of the model as it is now: the best checkpoint,
        training.json, the summary, early stopping."""
        evaluation = Evaluation(
            self._step(), self.backup.epoch + 1, float(bleu), time.monotonic() - self._started
        )
        self.evaluations.append(evaluation)
        if best_evaluation(self.evaluations) is evaluation:
            with atomic_file(self.run_dir / CHECKPOINT_DIR / BEST_CHECKPOINT) as temporary:
                self.model.save(temporary)
        record = read_training_file(self.run_dir)
        record["evaluations"] = [dataclasses.asdict(item) for item in self.evaluations]
        write_training_file(self.run_dir, record)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(f"{self.log_dir}/validation")
        with self._writer.as_default():
            tf.summary.write(
                "bleu", tf.constant(evaluation.bleu), step=evaluation.step,
                metadata=SCALAR_METADATA,
            )
        self._writer.flush()
        stale = evaluations_without_improvement(self.evaluations)
        logging.info(
            "Validation BLEU %.2f at step %d (epoch %d); %d evaluation(s) without improvement.",
            evaluation.bleu, evaluation.step, evaluation.epoch, stale,
        )
        if self.patience is not None and stale >= self.patience:
            self.backup.request_stop("early_stopping")
        return evaluation


class TimeLimit(keras.callbacks.Callback):
    """Asks `backup` to stop after the first step that ends `seconds` after
    training began (validation during training counts; vocabulary learning
    and data preparation do not)."""

    def __init__(self, seconds: float, backup: TrainingBackup):
        super().__init__()
        self.seconds = seconds
        self.backup = backup

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.started >= self.seconds:
            self.backup.request_stop("max_time")


class Throughput(keras.callbacks.Callback):
    """Adds the padding fraction and the non-padding target tokens per second
    of each epoch to its logs (so the progress bar prints them, and the
    summaries record them). Put it first, so that its step times leave out
    the other callbacks' work.

    Args:
        counts: `token_counts` of one pass over the training batches; every
            pass holds the same examples, so the same target tokens.
    """

    def __init__(self, counts: dict[str, int]):
        super().__init__()
        self.counts = counts

    def on_epoch_begin(self, epoch, logs=None):
        self.seconds, self.steps = 0.0, 0

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds += time.perf_counter() - self._started
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self.steps:
            return
        target_tokens = self.counts["target_tokens"] * self.steps / self.counts["batches"]
        logs["padding_fraction"] = self.counts["padding"] / self.counts["positions"]
        logs["target_tokens_per_second"] = target_tokens / self.seconds
        logging.info(
            "Epoch %d: %.0f non-padding target tokens/s, padding %.1f%% of the positions.",
            epoch + 1, logs["target_tokens_per_second"], 100 * logs["padding_fraction"],
        )


def final_model_record(
    backup: TrainingBackup, evaluations: list[Evaluation], step: int
) -> dict:
    """training.json's "model": the best evaluation, or the last model
    without one, and where training stopped."""
    best = best_evaluation(evaluations)
    where = {"last_step": step, "last_epoch": backup.epoch + (backup.step > 0)}
    if best is None:
        return {"source": "last", **where}
    return {"source": "best", **dataclasses.asdict(best), **where}
