"""A SavedModel for TF Serving: strings in, translations out.

Shape letters: see `keras_transformer` (B, S, T, K, M, V).
"""

import os
import re

import tensorflow as tf

from keras_transformer.data.tokenizers import END_ID, START_ID, detokenize_to_strings
from keras_transformer.data.vocabularies import (
    Vocabulary,
    check_tokenizer,
    load_vocabulary_file,
    make_tokenizer,
)
from keras_transformer.decoding.beam import beam_loop
from keras_transformer.decoding.greedy import greedy_loop
from keras_transformer.files import atomic_directory, check_target
from keras_transformer.export.preprocessing import (
    check_decoding,
    check_lengths,
    clean_text,
    clean_token_ids,
    source_token_ids,
)
from keras_transformer.models import ENCODER_INPUT, Seq2SeqTransformer, check_seq2seq_model

TEXT_INPUT = "text"


# Source lengths are padded up to a multiple of this before the XLA loop, so
# that it compiles for few shapes: padding changes no output.
LENGTH_BUCKET = 8


def _pad_to_bucket(encoder_token_ids: tf.Tensor, max_input_length: int) -> tf.Tensor:
    """int32 (B, S) padded with 0 to S rounded up to LENGTH_BUCKET, at most
    max_input_length (the ids are at most that wide already)."""
    length = tf.shape(encoder_token_ids)[1]
    bucket = tf.minimum(-(-length // LENGTH_BUCKET) * LENGTH_BUCKET, max_input_length)
    return tf.pad(encoder_token_ids, [[0, 0], [0, tf.maximum(bucket - length, 0)]])


class _Translator:
    """The graph functions of the SavedModel signatures.

    `translate_ids` decodes, `translate_text` wraps it with the in-graph
    cleanup, tokenization and detokenization.
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, settings):
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.settings = settings
        # XLA compiles the loop once per (B, S) shape, when first served.
        self.search = tf.function(self._search, jit_compile=settings["jit_compile"])

    def decode(self, encoder_token_ids):
        """int32 (B, S) -> int32 (B, T) tokens and float32 (B,) scores."""
        if self.settings["jit_compile"]:
            encoder_token_ids = _pad_to_bucket(encoder_token_ids, self.settings["max_input_length"])
        tokens, scores, num_steps = self.search(encoder_token_ids)  # (B, M), (B,), ()
        # At least one column: an empty batch runs no step.
        return tokens[:, : tf.maximum(num_steps, 1)], scores  # (B, T), (B,)

    def _search(self, encoder_token_ids):
        """The decoding loop: int32 (B, S) -> (B, M) tokens, (B,) scores, steps run."""
        settings = self.settings
        common = {
            "start_token_id": START_ID,
            "end_token_id": END_ID,
            "max_length": settings["max_output_length"],
        }
        if settings["decoding"] == "greedy":
            return greedy_loop(self.model, encoder_token_ids, **common)
        tokens, scores, num_steps = beam_loop(
            self.model,
            encoder_token_ids,
            beam_size=settings["beam_size"],
            length_penalty=settings["length_penalty"],
            **common,
        )  # (B, K, M), (B, K)
        return tokens[:, 0], scores[:, 0], num_steps

    def translate_ids(self, encoder_token_ids):
        encoder_token_ids = clean_token_ids(
            encoder_token_ids,
            self.model.source_vocabulary_size,
            self.settings["max_input_length"],
        )
        tokens, scores = self.decode(encoder_token_ids)
        return {"token_ids": tokens, "scores": scores}

    def translate_text(self, text):
        text = clean_text(text)  # (B,)
        encoder_token_ids = source_token_ids(
            self.source_tokenizer, text, self.settings["max_input_length"]
        )  # (B, S)
        tokens, scores = self.decode(encoder_token_ids)
        translations = detokenize_to_strings(
            self.target_tokenizer, tokens, self.settings["target_language"]
        )  # (B,)
        is_empty = tf.equal(text, "")
        return {
            "translations": tf.where(is_empty, "", translations),
            "scores": tf.where(is_empty, 0.0, scores),
        }


def _tokenizer(vocabulary, tokenizer: str, lowercase: bool, name: str):
    """The tokenizer of a vocabulary or of the path of a vocabulary file."""
    if isinstance(vocabulary, (str, os.PathLike)):
        vocabulary = load_vocabulary_file(tokenizer, vocabulary)
    try:
        return make_tokenizer(tokenizer, vocabulary, lowercase)
    except ValueError as error:
        raise ValueError(f"`{name}`: {error}") from None


def _check_vocabulary_size(tokenizer, name: str, model_size: int, side: str) -> None:
    if tokenizer.vocabulary_size() != model_size:
        raise ValueError(
            f"`{name}` has {tokenizer.vocabulary_size()} tokens but the model's {side} "
            f"embedding has {model_size} ids; they must be equal. Pass the vocabulary the "
            "model was trained with."
        )


def export_saved_model(
    model: Seq2SeqTransformer,
    source_vocabulary: Vocabulary | str | os.PathLike,
    target_vocabulary: Vocabulary | str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    tokenizer: str = "wordpiece",
    lowercase: bool = False,
    decoding: str = "greedy",
    beam_size: int = 4,
    length_penalty: float = 0.6,
    max_input_length: int | None = None,
    max_output_length: int | None = None,
    target_language: str = "en",
    text_signature: bool = True,
    jit_compile: bool = True,
    overwrite: bool = False,
) -> str:
    """Exports a translation model as a SavedModel for TF Serving.

    Signatures:
    - `serving_default`: `text`, strings (B,) -> `translations`, strings
      (B,), and `scores`, float32 (B,). In the graph: invalid UTF-8 is
      replaced, whitespace is stripped and collapsed, the text is WordPiece
      or SentencePiece tokenized (tensorflow-text ops), cut to `max_input_length - 1` tokens
      and ended with [END], decoded with key/value caches, and detokenized.
      Empty or whitespace-only inputs give "" with score 0; words of other
      scripts become [UNK]; rows of a batch are independent.
    - `translate_ids`: `encoder_token_ids`, int32 (B, S) -> `token_ids`,
      int32 (B, T), T <= max_output_length, each row ended by [END] (id 3)
      then 0, and `scores`. For clients that tokenize themselves: the input
      is the encoder input of training (source token ids, then [END], padded
      with 0); ids out of range become [UNK]; rows longer than
      `max_input_length` are cut. It uses no tensorflow-text op.

    With `text_signature=False` the SavedModel holds `translate_ids` only
    (also as `serving_default`) and no tensorflow-text op at all, for TF
    Serving builds that lack them: a server fails to load a SavedModel
    with any unregistered op, whichever signature uses it.

    Scores: greedy, the total log-probability of the output tokens ([END]
    included), summed in the decoding loop; beam, the best beam's
    `log_prob / ((5 + length) / 6) ** length_penalty` as `beam_search` gives.

    With `jit_compile=True` (the default) the decoding loop is an
    XLA-compiled function inside the graph, as `greedy_search` runs it: the
    loading process compiles it the first time it serves each batch size and
    source length (lengths are padded up to a multiple of 8). TF Serving
    runs it when started with `--xla_cpu_compilation_enabled=true` (off by
    default there); `jit_compile=False` exports the plain graph, slower but
    served by any TensorFlow runtime. Any batch size and input length. The
    SavedModel is written to a temporary directory beside `output_dir`,
    then renamed. Loading it needs `import tensorflow_text` (for the
    tokenizer ops) and not this package.

    Args:
        model: a `Seq2SeqTransformer`, trained.
        source_vocabulary, target_vocabulary: for "wordpiece", tokens or
            vocabulary files written by `save_vocabulary`; for
            "sentencepiece", serialized models or model files written by
            `save_sentencepiece_model`. Each must have as many tokens as the
            model's embedding has ids.
        output_dir: the SavedModel directory to create (for TF Serving,
            `models/NAME/VERSION`).
        tokenizer: "wordpiece" or "sentencepiece", as the vocabularies
            were trained.
        lowercase: as the vocabularies were trained (a SentencePiece model
            stores it).
        decoding: "greedy" or "beam".
        beam_size, length_penalty: the beam search's settings.
        max_input_length: the most encoder tokens, [END] included; default
            the model's `max_sequence_length`.
        max_output_length: the most output tokens, [END] included; default
            the model's `max_sequence_length`.
        target_language: code of the output language, for detokenization
            spacing ("fr" keeps French spacing before "!", "?", ":" and ";").
        text_signature: include the string signature (and the
            tensorflow-text ops it needs).
        jit_compile: compile the decoding loop with XLA (see above).
        overwrite: replace an existing `output_dir`.

    Returns:
        The absolute path of the SavedModel.

    Example:
    >>> export_saved_model(model, source_vocabulary, target_vocabulary,
    ...     "models/translator/1")  # doctest: +SKIP
    >>> translator = tf.saved_model.load("models/translator/1")  # doctest: +SKIP
    >>> translator.signatures["serving_default"](text=tf.constant(["Je suis étudiant."]))
    ... # doctest: +SKIP
    {'translations': <tf.Tensor: ... [b'I am a student.']>, 'scores': ...}
    """
    check_target(output_dir, overwrite)  # before the slow tracing, not only after it
    model = check_seq2seq_model(model, "Export")
    check_decoding(decoding, beam_size, length_penalty, model.target_vocabulary_size)
    if not isinstance(target_language, str) or not re.fullmatch("[a-z]{2,3}", target_language):
        raise ValueError(
            "`target_language` must be a lowercase language code of two or three "
            f"letters, such as 'en' or 'fr'. Received: target_language={target_language!r}"
        )
    max_input_length, max_output_length = check_lengths(
        model, max_input_length, max_output_length
    )
    check_tokenizer(tokenizer)
    source_tokenizer = _tokenizer(source_vocabulary, tokenizer, lowercase, "source_vocabulary")
    target_tokenizer = _tokenizer(target_vocabulary, tokenizer, lowercase, "target_vocabulary")
    _check_vocabulary_size(
        source_tokenizer, "source_vocabulary", model.source_vocabulary_size, "source"
    )
    _check_vocabulary_size(
        target_tokenizer, "target_vocabulary", model.target_vocabulary_size, "target"
    )
    translator = _Translator(
        model,
        source_tokenizer,
        target_tokenizer,
        {
            "decoding": decoding,
            "beam_size": int(beam_size),
            "length_penalty": float(length_penalty),
            "max_input_length": max_input_length,
            "max_output_length": max_output_length,
            "target_language": target_language,
            "jit_compile": bool(jit_compile),
        },
    )
    module = tf.Module()
    # The weights, tracked as the tf.Variables the graphs capture. (Keras's
    # ExportArchive saved each weight twice: the Keras variable and the
    # tf.Variable it wraps.)
    module.weights = [weight.value for weight in model.weights]
    module.translate_ids = tf.function(
        translator.translate_ids,
        input_signature=[tf.TensorSpec((None, None), tf.int32, name=ENCODER_INPUT)],
    )
    signatures = {"translate_ids": module.translate_ids.get_concrete_function()}
    signatures["serving_default"] = signatures["translate_ids"]
    if text_signature:
        # A SentencePiece tokenizer's model is a TensorFlow resource the text
        # graph captures, so it must be tracked to be saved.
        module.tokenizers = [source_tokenizer, target_tokenizer]
        _name_sentence_piece_resources(source_tokenizer, target_tokenizer)
        module.translate_text = tf.function(
            translator.translate_text,
            input_signature=[tf.TensorSpec((None,), tf.string, name=TEXT_INPUT)],
        )
        signatures["serving_default"] = module.translate_text.get_concrete_function()
    with atomic_directory(output_dir, overwrite=overwrite) as temporary:
        tf.saved_model.save(module, temporary, signatures=signatures)
    return os.path.abspath(os.fspath(output_dir))


def _name_sentence_piece_resources(source_tokenizer, target_tokenizer) -> None:
    """Gives each SentencePiece model resource its own graph name.

    tensorflow-text creates the model as a kernel-owned resource that a
    reloaded SavedModel shares by op name, and every tokenizer names that op
    alike. With two SentencePiece models in one SavedModel, the reloaded
    graph then ran both tokenizers with one of them, and the target ids were
    detokenized with the source language's pieces (tensorflow/text#1304).
    """
    for side, tokenizer in (("source", source_tokenizer), ("target", target_tokenizer)):
        sentence_piece = getattr(tokenizer, "_sentence_piece", None)
        if sentence_piece is not None:
            sentence_piece._model_resource._name = f"{side}_sentencepiece_model"
