"""Export from a run directory written by `keras-transformer train`."""

import json
import os
import zipfile
from pathlib import Path

import keras

from keras_transformer.data.readers import parse_direction
from keras_transformer.data.vocabularies import (
    TOKENIZERS,
    Vocabulary,
    load_vocabulary_file,
    make_tokenizer,
)
from keras_transformer.export.saved_model import export_saved_model
from keras_transformer.export.tflite import QUANTIZATIONS, export_tflite

FORMATS = ("saved_model", "tflite")
# The (source, target) vocabulary files of each config.json "tokenizer", as
# `keras_transformer.translation.run_directory` writes them.
VOCABULARY_FILES = {
    "wordpiece": ("source_vocabulary.txt", "target_vocabulary.txt"),
    "sentencepiece": ("source_spm.model", "target_spm.model"),
}
# The config.json fields export reads besides "direction", with their checks.
_POSITIVE_INT_FIELDS = ("beam_size", "max_sequence_length")


def _check_config(path: Path, config: dict) -> None:
    """Raises ValueError, naming config.json, for a missing or malformed field export reads."""
    if "direction" not in config:
        raise ValueError(f'{path}: expected a JSON object with a "direction" key.')
    try:
        parse_direction(config["direction"])
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    for name in _POSITIVE_INT_FIELDS:
        value = config.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: `{name}` must be a positive integer. Received: {value!r}")
    penalty = config.get("length_penalty", 0.6)
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)):
        raise ValueError(f"{path}: `length_penalty` must be a number. Received: {penalty!r}")
    if not isinstance(config.get("lowercase", False), bool):
        raise ValueError(
            f"{path}: `lowercase` must be true or false. Received: {config['lowercase']!r}"
        )
    tokenizer = config.get("tokenizer", "wordpiece")
    if not isinstance(tokenizer, str) or tokenizer not in TOKENIZERS:
        raise ValueError(
            f"{path}: `tokenizer` must be one of {TOKENIZERS}. Received: {tokenizer!r}"
        )


def _load_model(path: Path) -> keras.Model:
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a .keras model archive (a zip file of {path.stat().st_size} "
            "bytes is expected): the file is corrupt or was not written by `model.save`."
        )
    return keras.saving.load_model(path, compile=False)


def _check_vocabulary_sizes(run_dir: Path, config: dict, vocabularies: dict, model) -> None:
    """Raises ValueError when a vocabulary file, config.json and the model's
    embedding disagree on a vocabulary size."""
    tokenizer = config.get("tokenizer", "wordpiece")
    embeddings = {"source": "encoder_embedding", "target": "decoder_embedding"}
    for (side, vocabulary), file_name in zip(vocabularies.items(), VOCABULARY_FILES[tokenizer]):
        size = make_tokenizer(tokenizer, vocabulary).vocabulary_size()
        model_size = model.get_layer(embeddings[side]).vocabulary_size
        config_size = config.get(f"{side}_vocabulary_size", model_size)
        if not size == config_size == model_size:
            raise ValueError(
                f"The {side} vocabulary sizes of {run_dir} disagree: "
                f"{file_name} has {size} tokens, config.json says "
                f"{config_size} and the model's embedding has {model_size}. They must be "
                "equal; the run directory mixes files from different runs."
            )


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object.")
    _check_config(path, config)
    return config


def read_run_dir(
    run_dir: str | os.PathLike,
) -> tuple[dict, Vocabulary, Vocabulary, keras.Model]:
    """The config, vocabularies and model of a run directory.

    The vocabularies are token lists (config.json's "tokenizer" is
    "wordpiece", the default) or serialized SentencePiece models
    ("sentencepiece").

    Raises:
        FileNotFoundError: naming every missing file.
        ValueError: if config.json is not a JSON object with a valid
            "direction" and valid fields, model.keras is not a .keras
            archive, or the vocabulary files, config.json and the model
            disagree on a vocabulary size.
        DataError: a vocabulary file or SentencePiece model is malformed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory.")
    config_path = run_dir / "config.json"
    config = _read_config(config_path) if config_path.is_file() else {}
    tokenizer = config.get("tokenizer", "wordpiece")
    vocabulary_files = VOCABULARY_FILES[tokenizer]
    run_files = ("config.json", *vocabulary_files, "model.keras")
    missing = [name for name in run_files if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} is not a complete run directory: missing {', '.join(missing)}. "
            f"Export needs {', '.join(run_files)}, written by `keras-transformer train`."
        )
    source_vocabulary, target_vocabulary = (
        load_vocabulary_file(tokenizer, run_dir / name) for name in vocabulary_files
    )
    model = _load_model(run_dir / "model.keras")
    vocabularies = {"source": source_vocabulary, "target": target_vocabulary}
    _check_vocabulary_sizes(run_dir, config, vocabularies, model)
    return config, source_vocabulary, target_vocabulary, model


def export_from_run_dir(
    run_dir: str | os.PathLike,
    format: str,
    output: str | os.PathLike,
    *,
    quantization: str = "none",
    decoding: str | None = None,
    text_signature: bool = True,
    overwrite: bool = False,
) -> str:
    """Exports the model of a run directory as a SavedModel or a .tflite.

    Reads RUN_DIR/config.json (`max_sequence_length` sets both the input
    and output lengths; `tokenizer`, `lowercase`, `beam_size`,
    `length_penalty` and `direction`, whose target language sets the
    detokenization spacing), the vocabulary files (source_vocabulary.txt
    and target_vocabulary.txt for WordPiece, source_spm.model and
    target_spm.model for SentencePiece) and RUN_DIR/model.keras. A .tflite
    takes and returns ids for either tokenizer: the client tokenizes with
    the run's vocabulary files.

    Args:
        run_dir: the run directory.
        format: "saved_model" (`export_saved_model`) or "tflite"
            (`export_tflite`, batch size 1).
        output: the SavedModel directory or the .tflite file.
        quantization: for "tflite": "none", "float16" or "dynamic_range".
        decoding: "greedy" or "beam"; None for beam search when the
            config's `beam_size` is above 1 for a SavedModel, and greedy for
            a .tflite.
        text_signature: for "saved_model": include the string signature;
            False exports `translate_ids` alone, with no tensorflow-text op
            (see `export_saved_model`).
        overwrite: replace an existing `output`.

    Returns:
        The absolute path written.

    Example:
    >>> export_from_run_dir("runs/fr-en", "saved_model", "models/translator/1")
    ... # doctest: +SKIP
    """
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}. Received: format={format!r}")
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {QUANTIZATIONS}. Received: "
            f"quantization={quantization!r}"
        )
    if format == "saved_model" and quantization != "none":
        raise ValueError(
            "Quantization applies to the tflite format only; a SavedModel keeps "
            f"the trained weights. Received: quantization={quantization!r}"
        )
    if format == "tflite" and not text_signature:
        raise ValueError(
            "`text_signature=False` (--ids-only) applies to the saved_model format "
            "only; a .tflite always takes and returns ids. Received: format='tflite'"
        )
    if not overwrite and os.path.lexists(output):
        raise FileExistsError(f"{output} already exists. Choose a new output path.")
    config, source_vocabulary, target_vocabulary, model = read_run_dir(run_dir)
    beam_size = int(config.get("beam_size", 4))
    length_penalty = float(config.get("length_penalty", 0.6))
    max_length = config.get("max_sequence_length")
    if format == "tflite":
        return export_tflite(
            model,
            output,
            quantization=quantization,
            max_input_length=max_length,
            max_output_length=max_length,
            decoding=decoding or "greedy",
            beam_size=beam_size,
            length_penalty=length_penalty,
        )
    _, target_language = parse_direction(config.get("direction", "fr-en"))
    return export_saved_model(
        model,
        source_vocabulary,
        target_vocabulary,
        output,
        tokenizer=config.get("tokenizer", "wordpiece"),
        lowercase=bool(config.get("lowercase", False)),
        decoding=decoding or ("beam" if beam_size > 1 else "greedy"),
        beam_size=beam_size,
        length_penalty=length_penalty,
        max_input_length=max_length,
        max_output_length=max_length,
        target_language=target_language,
        text_signature=text_signature,
        overwrite=overwrite,
    )
