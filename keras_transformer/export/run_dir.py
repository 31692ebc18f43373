"""Export from a run directory written by `keras-transformer train`."""

import json
import os
from pathlib import Path

import keras

from keras_transformer.data.readers import parse_direction
from keras_transformer.data.tokenizers import load_vocabulary
from keras_transformer.export.saved_model import export_saved_model
from keras_transformer.export.tflite import QUANTIZATIONS, export_tflite

FORMATS = ("saved_model", "tflite")
RUN_FILES = ("config.json", "source_vocabulary.txt", "target_vocabulary.txt", "model.keras")


def read_run_dir(run_dir: str | os.PathLike) -> tuple[dict, list[str], list[str], keras.Model]:
    """The config, vocabularies and model of a run directory.

    Raises:
        FileNotFoundError: naming every missing file.
        ValueError: if config.json is not a JSON object.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory.")
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} is not a complete run directory: missing {', '.join(missing)}. "
            f"Export needs {', '.join(RUN_FILES)}, written by `keras-transformer train`."
        )
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{run_dir / 'config.json'}: not valid JSON ({error}).") from None
    if not isinstance(config, dict):
        raise ValueError(f"{run_dir / 'config.json'}: expected a JSON object.")
    source_vocabulary = load_vocabulary(run_dir / "source_vocabulary.txt")
    target_vocabulary = load_vocabulary(run_dir / "target_vocabulary.txt")
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    return config, source_vocabulary, target_vocabulary, model


def export_from_run_dir(
    run_dir: str | os.PathLike,
    format: str,
    output: str | os.PathLike,
    *,
    quantization: str = "none",
    decoding: str | None = None,
    overwrite: bool = False,
) -> str:
    """Exports the model of a run directory as a SavedModel or a .tflite.

    Reads RUN_DIR/config.json (`max_sequence_length` sets both the input
    and output lengths; `lowercase`, `beam_size`, `length_penalty` and
    `direction`, whose target language sets the detokenization spacing),
    RUN_DIR/source_vocabulary.txt, RUN_DIR/target_vocabulary.txt and
    RUN_DIR/model.keras.

    Args:
        run_dir: the run directory.
        format: "saved_model" (`export_saved_model`) or "tflite"
            (`export_tflite`, batch size 1).
        output: the SavedModel directory or the .tflite file.
        quantization: for "tflite": "none", "float16" or "dynamic_range".
        decoding: "greedy" or "beam"; None for beam search when the
            config's `beam_size` is above 1 for a SavedModel, and greedy for
            a .tflite.
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
        lowercase=bool(config.get("lowercase", False)),
        decoding=decoding or ("beam" if beam_size > 1 else "greedy"),
        beam_size=beam_size,
        length_penalty=length_penalty,
        max_input_length=max_length,
        max_output_length=max_length,
        target_language=target_language,
        overwrite=overwrite,
    )
