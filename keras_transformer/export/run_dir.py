"""Export from a run directory written by `keras-transformer train`."""

import os

from keras_transformer.data import parse_direction
from keras_transformer.export.saved_model import export_saved_model
from keras_transformer.export.tflite import QUANTIZATIONS, export_tflite
from keras_transformer.translation.run_directory import load_run

FORMATS = ("saved_model", "tflite")


def export_from_run_dir(
    run_dir: str | os.PathLike,
    format: str,
    output: str | os.PathLike,
    *,
    quantization: str = "none",
    decoding: str | None = None,
    text_signature: bool = True,
    jit_compile: bool = True,
    overwrite: bool = False,
) -> str:
    """Exports the model of a run directory as a SavedModel or a .tflite.

    Reads the run with `translation.run_directory.load_run`, which checks
    it: config.json (`max_sequence_length` sets both the input and output
    lengths; `tokenizer`, `lowercase`, `beam_size`, `length_penalty` and
    `direction`, whose target language sets the detokenization spacing),
    the vocabulary files (source_vocabulary.txt and target_vocabulary.txt
    for WordPiece, source_spm.model and target_spm.model for
    SentencePiece) and RUN_DIR/model.keras. A .tflite
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
        jit_compile: for "saved_model": the decoding loop compiled with XLA
            (False for a TF Serving without `--xla_cpu_compilation_enabled`).
        overwrite: replace an existing `output`.

    Returns:
        The absolute path written.

    Raises:
        FileNotFoundError, ValueError, DataError: as `load_run`, for a
            missing, incomplete or inconsistent run directory.

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
    run = load_run(run_dir)
    config = run.config
    max_length = config.max_sequence_length
    length_penalty = float(config.length_penalty)
    if format == "tflite":
        return export_tflite(
            run.model,
            output,
            quantization=quantization,
            max_input_length=max_length,
            max_output_length=max_length,
            decoding=decoding or "greedy",
            beam_size=config.beam_size,
            length_penalty=length_penalty,
        )
    _, target_language = parse_direction(run.direction)
    return export_saved_model(
        run.model,
        run.source_vocabulary,
        run.target_vocabulary,
        output,
        tokenizer=config.tokenizer,
        lowercase=config.lowercase,
        decoding=decoding or ("beam" if config.beam_size > 1 else "greedy"),
        beam_size=config.beam_size,
        length_penalty=length_penalty,
        max_input_length=max_length,
        max_output_length=max_length,
        target_language=target_language,
        text_signature=text_signature,
        jit_compile=jit_compile,
        overwrite=overwrite,
    )
