"""Pretrained OPUS-MT (Marian) translators as run directories of this library.

    keras-transformer import-marian opus-mt-fr-en --output-dir runs/opus-fr-en
    keras-transformer translate --run-dir runs/opus-fr-en "Je suis étudiant."

A checkpoint directory is what `huggingface-cli download
Helsinki-NLP/opus-mt-fr-en --local-dir opus-mt-fr-en` writes: config.json,
model.safetensors, source.spm, target.spm and vocab.json (tokenizer_config.json
and generation_config.json are read when present). Nothing is downloaded
here. The weights go into the library's own layers, built with the options
Marian needs (Hugging Face's `modeling_marian.py`):

- post-norm blocks (`normalize_first=False`), LayerNorm epsilon 1e-5, biases
  on the query, key, value and output projections, queries scaled by
  Dh^-0.5, no LayerNorm after the embeddings or after the stacks;
- the feed-forward activation of `activation_function` ("swish" is SiLU);
- sinusoidal positions from 0 in the "concatenated" layout (sines, then
  cosines), token embeddings scaled by sqrt(D) when `scale_embedding`;
- one embedding table for source ids, target ids and the output projection
  (`share_embeddings`, `tie_embeddings`), plus `final_logits_bias` as the
  embedding's output bias (`use_output_bias`).

Token ids are renumbered so that padding is 0, as everywhere in the library;
see `keras_transformer.convert.marian_vocabulary` for the map and why. The
logits of the imported model are Marian's (a permutation of them, plus the
[START] column at -1e9), so greedy search gives `generate`'s tokens. Beam
search differs in its length penalty: Hugging Face divides a hypothesis's
log-probability by |Y|^length_penalty, this library by the GNMT
((5 + |Y|) / 6)^alpha; with 0 both rank by log-probability. The imported
config keeps the checkpoint's `num_beams` and its `length_penalty` as alpha.
`generate` also forces "</s>" at `max_length` (`forced_eos_token_id`); the
library's searches leave a cut hypothesis without [END].

Not supported (a DataError says so): separate source and target
vocabularies (`share_encoder_decoder_embeddings: false`), an output
projection not tied to the embedding, encoder and decoder of different
depths, head counts or feed-forward sizes. Multilingual checkpoints whose
sources start with a ">>xx<<" target-language token are imported, but the
token is not split off as MarianTokenizer does.
"""

import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_transformer.convert.marian_vocabulary import (
    START_LOGIT_BIAS,
    VocabularyMap,
    read_vocabulary,
    sentencepiece_model,
    vocabulary_map,
)
from keras_transformer.data import DataError, parse_direction
from keras_transformer.data.tokenizers import START_ID
from keras_transformer.files import atomic_directory
from keras_transformer.models import Seq2SeqTransformer, build_seq2seq_transformer
from keras_transformer.optional import import_optional
from keras_transformer.translation.config import TranslationConfig
from keras_transformer.translation.run_directory import (
    MODEL_FILE,
    VOCABULARY_FILES,
    write_run_config,
)
from keras_transformer.translation.translator import Translator

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SPM_FILES = ("source.spm", "target.spm")
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, *SPM_FILES, "vocab.json")
# Marian's `activation_function` -> the library's feed-forward activation.
ACTIVATIONS = {"swish": "silu", "silu": "silu", "relu": "relu", "gelu": "gelu"}
_INTEGER_FIELDS = (
    "vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
    "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "pad_token_id",
    "eos_token_id", "max_position_embeddings",
)
# Hugging Face's names within a block -> the library's.
_ATTENTION = {"q_proj": "query", "k_proj": "key", "v_proj": "value", "out_proj": "attention_output"}
_NORMS = {
    "self_attn_layer_norm": "self_attention_norm",
    "encoder_attn_layer_norm": "cross_attention_norm",
    "final_layer_norm": "feed_forward_norm",
}


def check_checkpoint_dir(checkpoint_dir: str | os.PathLike) -> Path:
    """The checkpoint directory as a `Path`, or a DataError naming what is missing."""
    path = Path(checkpoint_dir)
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise DataError(
            f"Marian checkpoint directory {str(checkpoint_dir)!r} {what}. Expected a "
            f"directory holding {list(REQUIRED_FILES)}, such as `huggingface-cli download "
            "Helsinki-NLP/opus-mt-fr-en --local-dir opus-mt-fr-en` writes."
        )
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise DataError(
            f"Marian checkpoint directory {str(checkpoint_dir)!r} lacks {missing}; expected "
            f"{list(REQUIRED_FILES)} (a PyTorch-only pytorch_model.bin is not read)."
        )
    return path


def _read_json(path: Path) -> dict:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(values, dict):
        raise DataError(f"{path}: expected a JSON object, received {type(values).__name__}.")
    return values


def read_marian_config(path: Path) -> dict:
    """config.json, checked: a DataError unless it describes a Marian model
    whose architecture the library's layers can hold."""
    config = _read_json(path)
    if config.get("model_type") != "marian":
        raise DataError(
            f"{path}: \"model_type\" is {config.get('model_type')!r}; expected \"marian\" "
            "(a Hugging Face MarianMTModel checkpoint such as Helsinki-NLP/opus-mt-fr-en)."
        )
    for name in _INTEGER_FIELDS:
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"{path}: expected an integer {name!r} >= 0; received {value!r}.")
    config.setdefault("decoder_start_token_id", config["pad_token_id"])
    for first, second in (
        ("encoder_layers", "decoder_layers"),
        ("encoder_attention_heads", "decoder_attention_heads"),
        ("encoder_ffn_dim", "decoder_ffn_dim"),
    ):
        if config[first] != config[second]:
            raise DataError(
                f"{path}: {first}={config[first]} and {second}={config[second]} differ; "
                "the library's model has one value for both."
            )
    if not config.get("share_encoder_decoder_embeddings", True):
        raise DataError(
            f"{path}: \"share_encoder_decoder_embeddings\" is false; only checkpoints with "
            "one vocabulary for both languages (all OPUS-MT ones) are supported."
        )
    activation = config.get("activation_function", "gelu")
    if activation not in ACTIVATIONS:
        raise DataError(
            f"{path}: \"activation_function\" is {activation!r}; expected one of "
            f"{sorted(ACTIVATIONS)}."
        )
    if config["d_model"] % config["encoder_attention_heads"]:
        raise DataError(
            f"{path}: d_model={config['d_model']} is not divisible by "
            f"encoder_attention_heads={config['encoder_attention_heads']}."
        )
    return config


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """The Hugging Face tensor names and shapes that `config` implies
    (torch `Linear` weights are (out, in)), "final_logits_bias" included."""
    vocabulary_size, hidden_dim = config["vocab_size"], config["d_model"]
    intermediate_dim = config["encoder_ffn_dim"]
    shapes = {"model.shared.weight": (vocabulary_size, hidden_dim),
              "final_logits_bias": (1, vocabulary_size)}
    stacks = (("encoder", ("self_attn",)), ("decoder", ("self_attn", "encoder_attn")))
    for stack, attentions in stacks:
        for index in range(config[f"{stack}_layers"]):
            prefix = f"model.{stack}.layers.{index}"
            for attention in attentions:
                for projection in _ATTENTION:
                    shapes[f"{prefix}.{attention}.{projection}.weight"] = (hidden_dim, hidden_dim)
                    shapes[f"{prefix}.{attention}.{projection}.bias"] = (hidden_dim,)
                for part in ("weight", "bias"):
                    shapes[f"{prefix}.{attention}_layer_norm.{part}"] = (hidden_dim,)
            shapes[f"{prefix}.fc1.weight"] = (intermediate_dim, hidden_dim)
            shapes[f"{prefix}.fc1.bias"] = (intermediate_dim,)
            shapes[f"{prefix}.fc2.weight"] = (hidden_dim, intermediate_dim)
            shapes[f"{prefix}.fc2.bias"] = (hidden_dim,)
            for part in ("weight", "bias"):
                shapes[f"{prefix}.final_layer_norm.{part}"] = (hidden_dim,)
    return shapes


def read_marian_weights(path: Path, config: dict) -> dict[str, np.ndarray]:
    """model.safetensors as float32 arrays, checked against `config`.

    The shared embedding may be stored under "model.shared.weight" or one of
    the tied names; a missing "final_logits_bias" is zeros, as Hugging Face
    loads it. Raises DataError for a tensor that is missing, has the wrong
    shape, or an untied "lm_head.weight".
    """
    safetensors_numpy = import_optional(
        "safetensors.numpy", "convert", "importing a Marian checkpoint"
    )
    try:
        tensors = safetensors_numpy.load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError
        raise DataError(f"{path}: not a readable safetensors file ({error}).") from None
    for alias in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"):
        if "model.shared.weight" not in tensors and alias in tensors:
            tensors["model.shared.weight"] = tensors[alias]
    if "final_logits_bias" not in tensors:
        tensors["final_logits_bias"] = np.zeros((1, config["vocab_size"]), "float32")
    weights = {}
    for name, shape in expected_shapes(config).items():
        if name not in tensors:
            raise DataError(
                f"{path}: has no tensor {name!r}, which a Marian model of config.json "
                f"needs (shape {shape})."
            )
        if tuple(tensors[name].shape) != shape:
            raise DataError(
                f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, but "
                f"config.json implies {shape}; the weights and config.json disagree."
            )
        weights[name] = np.asarray(tensors[name], "float32")
    lm_head = tensors.get("lm_head.weight")
    if lm_head is not None and not np.array_equal(lm_head, tensors["model.shared.weight"]):
        raise DataError(
            f"{path}: \"lm_head.weight\" differs from the shared embedding; only "
            "checkpoints whose output projection is the embedding are supported."
        )
    return weights


def _library_weights(weights: dict, config: dict, vocabulary: VocabularyMap) -> dict:
    """Hugging Face tensors -> {library weight path: array}, ids renumbered."""
    embeddings = weights["model.shared.weight"][vocabulary.marian_rows]  # (V + 1, D)
    output_bias = weights["final_logits_bias"][0][vocabulary.marian_rows]  # (V + 1,)
    output_bias[START_ID] = START_LOGIT_BIAS
    values = {"embedding/embeddings": embeddings, "embedding/output_bias": output_bias}
    for stack in ("encoder", "decoder"):
        for index in range(config[f"{stack}_layers"]):
            source, target = f"model.{stack}.layers.{index}", f"{stack}/block_{index}"
            attentions = {"self_attn": "self_attention"}
            if stack == "decoder":
                attentions["encoder_attn"] = "cross_attention"
            for attention, ours in attentions.items():
                for projection, dense in _ATTENTION.items():
                    name = f"{source}.{attention}.{projection}"
                    values[f"{target}/{ours}/{dense}/kernel"] = weights[f"{name}.weight"].T
                    values[f"{target}/{ours}/{dense}/bias"] = weights[f"{name}.bias"]
            for norm, ours in _NORMS.items():
                if f"{source}.{norm}.weight" in weights:
                    values[f"{target}/{ours}/gamma"] = weights[f"{source}.{norm}.weight"]
                    values[f"{target}/{ours}/beta"] = weights[f"{source}.{norm}.bias"]
            for dense, ours in (("fc1", "intermediate"), ("fc2", "output")):
                kernel = weights[f"{source}.{dense}.weight"].T  # (in, out)
                values[f"{target}/feed_forward/{ours}/kernel"] = kernel
                values[f"{target}/feed_forward/{ours}/bias"] = weights[f"{source}.{dense}.bias"]
    return values


def _generation_settings(checkpoint: Path, config: dict) -> dict:
    """generation_config.json (or, for older checkpoints, config.json)."""
    path = checkpoint / "generation_config.json"
    generation = _read_json(path) if path.is_file() else {}
    return {**config, **generation}


def _direction(checkpoint: Path, direction: str | None) -> str:
    """`direction`, else tokenizer_config.json's languages, else "xx-yy" from
    an "opus-mt-xx-yy" directory name."""
    if direction is None:
        path = checkpoint / "tokenizer_config.json"
        languages = _read_json(path) if path.is_file() else {}
        source, target = languages.get("source_lang"), languages.get("target_lang")
        match = re.search(r"opus-mt-([a-z]+)-([a-z]+)$", checkpoint.resolve().name)
        if isinstance(source, str) and isinstance(target, str):
            direction = f"{source}-{target}"
        elif match:
            direction = f"{match[1]}-{match[2]}"
        else:
            raise DataError(
                f"{checkpoint}: cannot tell the translation direction (no source_lang and "
                "target_lang in tokenizer_config.json, and the directory name is not "
                "opus-mt-xx-yy); pass it, such as direction='fr-en' (--direction fr-en)."
            )
    parse_direction(direction)
    return direction


def _assign(model: Seq2SeqTransformer, values: dict) -> None:
    """Sets every weight of `model` from `values`, keyed by weight path."""
    paths = {weight.path: weight for weight in model.weights}
    unset = sorted(set(paths) - set(values))
    unknown = sorted(set(values) - set(paths))
    if unset or unknown:  # a bug here, not in the checkpoint
        raise RuntimeError(f"Marian import: weights not set {unset}, not found {unknown}.")
    for path, weight in paths.items():
        weight.assign(values[path].astype(weight.dtype))


def from_marian(
    checkpoint_dir: str | os.PathLike,
    direction: str | None = None,
    max_sequence_length: int | None = None,
) -> Translator:
    """Imports a local Hugging Face Marian (OPUS-MT) checkpoint as a `Translator`.

    Args:
        checkpoint_dir: a directory with config.json, model.safetensors,
            source.spm, target.spm and vocab.json.
        direction: "source-target", such as "fr-en"; by default from
            tokenizer_config.json or an "opus-mt-xx-yy" directory name.
        max_sequence_length: the longest source and translation, in tokens
            with the end token; by default the checkpoint's `max_length`
            (generation_config.json), else `max_position_embeddings`.

    Returns:
        A `Translator` whose model holds the checkpoint's weights, with the
        renumbered SentencePiece models of
        `keras_transformer.convert.marian_vocabulary` as vocabularies, and a
        `TranslationConfig` (`tokenizer="sentencepiece"`) that rebuilds the
        same model. `import_marian` writes it as a run directory.

    Raises:
        DataError: a missing file, a config.json that is not Marian's or
            that the layers cannot hold, tensors whose names or shapes
            disagree with it, or vocabularies that disagree.
        MissingExtraError: safetensors is not installed.

    Example:
    >>> translator = from_marian("opus-mt-fr-en")  # doctest: +SKIP
    >>> translator.translate(["Je suis étudiant."])  # doctest: +SKIP
    ['I am a student.']
    """
    run = _convert(checkpoint_dir, direction, max_sequence_length)
    return Translator(run.model, run.config, run.source_vocabulary, run.target_vocabulary,
                      run.direction)


class _Conversion(NamedTuple):
    """What `import_marian` writes to a run directory."""

    model: Seq2SeqTransformer
    config: TranslationConfig
    direction: str
    source_vocabulary: bytes
    target_vocabulary: bytes


def _convert(
    checkpoint_dir: str | os.PathLike, direction: str | None, max_sequence_length: int | None
) -> _Conversion:
    checkpoint = check_checkpoint_dir(checkpoint_dir)
    config = read_marian_config(checkpoint / CONFIG_FILE)
    direction = _direction(checkpoint, direction)
    weights = read_marian_weights(checkpoint / WEIGHTS_FILE, config)
    tokens = read_vocabulary(checkpoint / "vocab.json", config["vocab_size"])
    tokenizer_config = checkpoint / "tokenizer_config.json"
    unk_token = "<unk>"
    if tokenizer_config.is_file():
        unk_token = _read_json(tokenizer_config).get("unk_token", unk_token)
    if unk_token not in tokens:
        raise DataError(f"{checkpoint / 'vocab.json'}: has no unknown token {unk_token!r}.")
    vocabulary = vocabulary_map(
        tokens, tokens.index(unk_token), config["eos_token_id"], config["pad_token_id"],
        config["decoder_start_token_id"],
    )
    protos = [sentencepiece_model(checkpoint / name, vocabulary) for name in SPM_FILES]
    settings = _generation_settings(checkpoint, config)
    if max_sequence_length is None:
        max_sequence_length = config["max_position_embeddings"]
    run_config = TranslationConfig(
        num_layers=config["encoder_layers"],
        hidden_dim=config["d_model"],
        num_heads=config["encoder_attention_heads"],
        intermediate_dim=config["encoder_ffn_dim"],
        dropout=float(config.get("dropout", 0.1)),
        normalize_first=False,
        tie_embeddings=True,
        position_encoding="sinusoidal",
        max_sequence_length=int(max_sequence_length),
        source_vocabulary_size=vocabulary.size,
        target_vocabulary_size=vocabulary.size,
        tokenizer="sentencepiece",
        beam_size=int(settings.get("num_beams") or 4),
        length_penalty=float(settings.get("length_penalty", 1.0)),
        activation=ACTIVATIONS[config.get("activation_function", "gelu")],
        sinusoidal_layout="concatenated",
        scale_embeddings=bool(config.get("scale_embedding", False)),
        use_output_bias=True,
        share_embeddings=True,
    )
    model = build_seq2seq_transformer(
        vocabulary.size, vocabulary.size, **run_config.model_kwargs(), name="marian"
    )
    _assign(model, _library_weights(weights, config, vocabulary))
    return _Conversion(model, run_config, direction, *protos)


def import_marian(
    checkpoint_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    direction: str | None = None,
    max_sequence_length: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Imports a Marian checkpoint (see `from_marian`) into a new run directory.

    Writes config.json, source_spm.model, target_spm.model and model.keras
    (the layout of `translation.run_directory`), all at once: the directory
    appears complete or not at all. `translate`, `evaluate --data`,
    `attention` and `export` read it as a trained run.

    Returns:
        The run directory's absolute path.

    Raises:
        FileExistsError: `output_dir` exists and `overwrite` is False.
        DataError, MissingExtraError: as `from_marian`.

    Example:
    >>> import_marian("opus-mt-fr-en", "runs/opus-fr-en")  # doctest: +SKIP
    """
    if not overwrite and os.path.lexists(output_dir):
        raise FileExistsError(
            f"{output_dir} already exists. Choose a new run directory, or pass "
            "overwrite=True (--overwrite)."
        )
    run = _convert(checkpoint_dir, direction, max_sequence_length)
    with atomic_directory(output_dir, overwrite=overwrite) as temporary:
        run_dir = Path(temporary)
        run_dir.chmod(0o755)  # as `train` makes it; mkdtemp gives its owner only
        write_run_config(run_dir, run.config, run.direction)
        protos = (run.source_vocabulary, run.target_vocabulary)
        for name, proto in zip(VOCABULARY_FILES["sentencepiece"], protos):
            (run_dir / name).write_bytes(proto)
        run.model.save(run_dir / MODEL_FILE)
    return Path(output_dir).resolve()
