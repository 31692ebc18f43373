"""The layout of a run directory: what `train` writes and `Translator` reads.

    RUN_DIR/config.json               TranslationConfig fields, "direction", and
                                      the actual vocabulary sizes
    RUN_DIR/source_vocabulary.txt     WordPiece (the default tokenizer): one
    RUN_DIR/target_vocabulary.txt     token per line, id order
    RUN_DIR/source_spm.model          or, with "tokenizer": "sentencepiece",
    RUN_DIR/target_spm.model          the serialized SentencePiece models
    RUN_DIR/model.keras               the final model, written atomically
    RUN_DIR/test.tsv                  source<TAB>reference, the test split
    RUN_DIR/checkpoints/epoch_NNN.keras  the model after each epoch whose loss
                                      and weights are finite
    RUN_DIR/checkpoints/best.keras    the model of the best validation BLEU
                                      so far (moving-average weights if used)
    RUN_DIR/training.json             every validation BLEU (step, epoch),
                                      then why training stopped and which
                                      model model.keras is
    RUN_DIR/backup/state.json         the position (epoch, step) of the last
                                      backup, the dropout seed states, a stop
                                      reason, and the name of
    RUN_DIR/backup/epoch_EEE_step_SSSSSS.weights.h5  its weights and optimizer
                                      state (see `backup.TrainingBackup`); kept
                                      after training, to continue the run
    RUN_DIR/logs/                     TensorBoard event files

`load_run` reads a finished run back, checked: `Translator.from_run_dir`
and `export_from_run_dir` both go through it.

Every file but the event files, which TensorFlow appends to, is written to a
temporary name beside it (starting with ".") and then renamed, so a run
killed at any moment, even by SIGKILL, leaves only complete files under
their final names. A temporary file may be left behind; nothing reads it.
"""

import json
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import keras

from keras_transformer.data import DataError, load_vocabulary_file, make_tokenizer, parse_direction
from keras_transformer.data.vocabularies import Vocabulary
from keras_transformer.files import write_file_atomic
from keras_transformer.models import Seq2SeqTransformer
from keras_transformer.translation.config import TranslationConfig

CONFIG_FILE = "config.json"
SOURCE_VOCABULARY_FILE = "source_vocabulary.txt"
TARGET_VOCABULARY_FILE = "target_vocabulary.txt"
# The (source, target) vocabulary files of each `TranslationConfig.tokenizer`.
VOCABULARY_FILES = {
    "wordpiece": (SOURCE_VOCABULARY_FILE, TARGET_VOCABULARY_FILE),
    "sentencepiece": ("source_spm.model", "target_spm.model"),
}
MODEL_FILE = "model.keras"
TEST_FILE = "test.tsv"
CHECKPOINT_DIR = "checkpoints"
BACKUP_DIR = "backup"
LOG_DIR = "logs"
CHECKPOINT_PATTERN = "epoch_{epoch:03d}.keras"
BEST_CHECKPOINT = "best.keras"
TRAINING_FILE = "training.json"


def required_files(tokenizer: str) -> tuple[str, ...]:
    """What `Translator.from_run_dir` needs from a run of this tokenizer."""
    return (CONFIG_FILE, *VOCABULARY_FILES[tokenizer], MODEL_FILE)


def _configured_tokenizer(run_dir: Path) -> str | None:
    """config.json's "tokenizer" ("wordpiece" when absent or unreadable), or
    None for an unknown name, which `read_run_config` then reports."""
    try:
        values = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "wordpiece"
    if not isinstance(values, dict):
        return "wordpiece"
    tokenizer = values.get("tokenizer", "wordpiece")
    return tokenizer if isinstance(tokenizer, str) and tokenizer in VOCABULARY_FILES else None


def check_run_dir(run_dir: str | os.PathLike, required=None) -> Path:
    """The run directory as a `Path`, or a FileNotFoundError naming what is missing.

    `required` defaults to the files of the tokenizer config.json names.
    """
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(
            f"Run directory {str(run_dir)!r} is a file, not a directory. Expected a "
            "directory written by `keras-transformer train --output-dir RUN_DIR`."
        )
    if not path.is_dir():
        raise FileNotFoundError(
            f"Run directory {str(run_dir)!r} does not exist. Expected a directory "
            f"written by `keras-transformer train --output-dir {run_dir}`."
        )
    if required is None:
        tokenizer = _configured_tokenizer(path)
        required = (CONFIG_FILE, MODEL_FILE) if tokenizer is None else required_files(tokenizer)
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        hint = " (has training finished?)" if MODEL_FILE in missing else ""
        raise FileNotFoundError(
            f"Run directory {str(run_dir)!r} is incomplete{hint}: missing {missing}. "
            f"A finished run holds {list(required)}."
        )
    return path


def _load_model(run_dir: Path) -> Seq2SeqTransformer:
    """Loads RUN_DIR/model.keras, uncompiled; a ValueError if it is not a .keras
    archive of a `Seq2SeqTransformer`."""
    path = run_dir / MODEL_FILE
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a .keras model archive (a zip file of {path.stat().st_size} "
            "bytes is expected): the file is corrupt or was not written by `model.save`."
        )
    model = keras.saving.load_model(path, compile=False)
    if not isinstance(model, Seq2SeqTransformer):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, not a `Seq2SeqTransformer`: it was "
            "written by a keras_transformer from before the model object, or by other "
            "code. Train the run again with this version."
        )
    return decoding_model(model)


def decoding_model(model: Seq2SeqTransformer) -> Seq2SeqTransformer:
    """The model that translates and exports a trained model: the model, or
    for one trained in mixed precision its float32 copy (the same float32
    weights). On CPUs, XLA's bfloat16 decoding is no faster than float32 (26%
    slower at batch 32 on a Xeon with AMX, docs/performance.md) and
    LiteRT has no bfloat16 kernels, so bfloat16 pays off in training only."""
    return model if model.parts_compute_dtype == "float32" else model.float32_copy()


def model_vocabulary_sizes(model: Seq2SeqTransformer) -> tuple[int, int]:
    """The (source, target) vocabulary sizes V of a `Seq2SeqTransformer`."""
    return model.source_vocabulary_size, model.target_vocabulary_size


def check_vocabulary_sizes(
    vocabulary_sizes: tuple[int, int],
    config: TranslationConfig,
    model: Seq2SeqTransformer,
    run_dir: Path | None = None,
) -> None:
    """Raises ValueError unless the (source, target) vocabulary sizes, the
    config's and the model's agree; the message names the run directory's
    files when the three come from `run_dir`."""
    config_sizes = (config.source_vocabulary_size, config.target_vocabulary_size)
    if run_dir is None:
        where, config_name, fix = "", "the config", "build all three from one run."
        names = ("the source vocabulary", "the target vocabulary")
    else:
        where, config_name = f" of {run_dir}", CONFIG_FILE
        fix = "the run directory mixes files from different runs."
        names = VOCABULARY_FILES[config.tokenizer]
    for side, name, size, config_size, model_size in zip(
        ("source", "target"), names, vocabulary_sizes, config_sizes, model_vocabulary_sizes(model)
    ):
        if not size == config_size == model_size:
            raise ValueError(
                f"The {side} vocabulary sizes{where} disagree: {name} has {size} tokens, "
                f"{config_name} says {config_size} and the model's embedding has "
                f"{model_size}. They must be equal; {fix}"
            )


def write_run_config(run_dir: Path, config: TranslationConfig, direction: str) -> None:
    """Writes config.json: the config's fields plus "direction"."""
    values = {**json.loads(config.to_json()), "direction": direction}
    write_file_atomic(run_dir / CONFIG_FILE, json.dumps(values, indent=2, sort_keys=True) + "\n")


def read_run_config(run_dir: Path) -> tuple[TranslationConfig, str]:
    """Reads config.json back as `(config, direction)`; a ValueError naming
    the file for invalid JSON, a bad "direction" or a bad config field."""
    path = run_dir / CONFIG_FILE
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a valid JSON config ({error}).") from None
    if not isinstance(values, dict) or "direction" not in values:
        raise ValueError(f"{path}: expected a JSON object with a \"direction\" key.")
    direction = values.pop("direction")
    try:
        parse_direction(direction)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return TranslationConfig.from_dict(values, source=str(path)), direction


class Run(NamedTuple):
    """A finished run, as `load_run` reads it."""

    path: Path
    config: TranslationConfig
    direction: str
    source_vocabulary: Vocabulary
    target_vocabulary: Vocabulary
    model: Seq2SeqTransformer


def load_run(run_dir: str | os.PathLike) -> Run:
    """Reads and checks the config, vocabularies and model of a finished run.

    The vocabularies are token lists for config.json's "tokenizer"
    "wordpiece" (the default), serialized SentencePiece models for
    "sentencepiece"; the model is loaded uncompiled.

    Raises:
        FileNotFoundError: the directory or one of its files is missing
            (the message names them).
        ValueError: config.json is malformed, model.keras is not a .keras
            archive, or the vocabulary files, config.json and the model
            disagree on a vocabulary size.
        DataError: a vocabulary file or SentencePiece model is malformed.

    Example:
    >>> run = load_run("runs/embedded")  # doctest: +SKIP
    >>> run.config.max_sequence_length  # doctest: +SKIP
    32
    """
    path = check_run_dir(run_dir)
    config, direction = read_run_config(path)
    vocabularies = [
        load_vocabulary_file(config.tokenizer, path / name)
        for name in VOCABULARY_FILES[config.tokenizer]
    ]
    model = _load_model(path)
    sizes = tuple(
        make_tokenizer(config.tokenizer, vocabulary).vocabulary_size()
        for vocabulary in vocabularies
    )
    check_vocabulary_sizes(sizes, config, model, path)
    return Run(path, config, direction, *vocabularies, model)


def write_test_split(run_dir: Path, pairs: list[tuple[str, str]]) -> None:
    """Writes test.tsv, one `source<TAB>reference` line per pair."""
    write_file_atomic(run_dir / TEST_FILE, "".join(f"{s}\t{t}\n" for s, t in pairs))


def read_test_split(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Reads a `source<TAB>reference` file such as test.tsv."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file.") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid UTF-8.") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(
                f"{path}:{number}: expected 'source<TAB>reference', "
                f"found {len(fields)} tab-separated field(s)."
            )
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise DataError(f"{path}: the file holds no sentence pairs.")
    return pairs
