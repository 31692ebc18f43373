"""A TFLite (LiteRT) model with builtin ops only, for phones: ids in, ids out.

Shape letters: see `keras_transformer`; here N is the exported batch size,
S max_input_length and M max_output_length.
"""

import os
import tempfile

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from keras_transformer.data.tokenizers import END_ID, START_ID
from keras_transformer.decoding.beam import beam_loop
from keras_transformer.decoding.greedy import greedy_loop
from keras_transformer.files import write_file_atomic
from keras_transformer.export.preprocessing import check_decoding, check_lengths
from keras_transformer.layers.validation import check_positive_int
from keras_transformer.models import Seq2SeqTransformer, check_seq2seq_model

QUANTIZATIONS = ("none", "float16", "dynamic_range")
TRANSLATE, ENCODE, DECODE_STEP = "translate", "encode", "decode_step"


def _cache_names(prefix: str, cache: tuple) -> list[str]:
    """`prefix_0`, `prefix_1`, ...: the keys, then the values, block by block."""
    return [f"{prefix}_{index}" for index in range(2 * len(cache))]


def _named(names: list[str], cache: tuple) -> dict:
    """Per-block `(keys, values)` pairs as a flat dict of named tensors."""
    return dict(zip(names, (part for pair in cache for part in pair)))


def _cache(names: list[str], tensors: dict) -> tuple:
    """The per-block `(keys, values)` pairs of the named tensors, in order."""
    flat = [tensors[name] for name in names]
    return tuple(zip(flat[0::2], flat[1::2]))


def _signature_functions(model: Seq2SeqTransformer, settings: dict) -> dict:
    """The three graph functions of the .tflite, each taking and returning
    a flat dict of named tensors with fixed shapes.

    The cache shapes are read from the model itself, so the signatures
    follow its cache layout.
    """
    batch_size = settings["batch_size"]
    source_spec = tf.TensorSpec(
        (batch_size, settings["max_input_length"]), tf.int32, name="encoder_token_ids"
    )
    encoder_outputs, padding_mask = model.encode(tf.ones(source_spec.shape, tf.int32))
    cross_cache = model.compute_cross_attention_cache(encoder_outputs)
    self_cache = model.init_self_attention_cache(batch_size, settings["max_output_length"])
    self_names = _cache_names("self_attention_cache", self_cache)
    cross_names = _cache_names("cross_attention_cache", cross_cache)
    common = {
        "start_token_id": START_ID,
        "end_token_id": END_ID,
        "max_length": settings["max_output_length"],
    }

    def translate(encoder_token_ids):
        if settings["decoding"] == "beam":
            tokens, scores, num_steps = beam_loop(
                model,
                encoder_token_ids,
                beam_size=settings["beam_size"],
                length_penalty=settings["length_penalty"],
                **common,
            )  # (N, K, M), (N, K)
            return {"token_ids": tokens[:, 0], "scores": scores[:, 0], "num_steps": num_steps}
        tokens, _, num_steps = greedy_loop(
            model, encoder_token_ids, compute_scores=False, **common
        )  # (N, M)
        return {"token_ids": tokens, "num_steps": num_steps}

    def encode(encoder_token_ids):
        encoder_outputs, mask = model.encode(encoder_token_ids)
        cache = model.compute_cross_attention_cache(encoder_outputs)
        return {"encoder_padding_mask": mask, **_named(cross_names, cache)}

    def decode_step(inputs):
        logits, cache = model.decode_step(
            inputs["token_ids"][:, None],
            inputs["index"],
            _cache(self_names, inputs),
            _cache(cross_names, inputs),
            inputs["encoder_padding_mask"],
        )  # (N, 1, V)
        return {"logits": logits[:, 0], **_named(self_names, cache)}

    def spec(name, tensor):
        return tf.TensorSpec(tensor.shape, tensor.dtype, name=name)

    step_specs = {
        "token_ids": tf.TensorSpec((batch_size,), tf.int32, name="token_ids"),
        "index": tf.TensorSpec((), tf.int32, name="index"),
        "encoder_padding_mask": spec("encoder_padding_mask", padding_mask),
        **{name: spec(name, part) for name, part in _named(self_names, self_cache).items()},
        **{name: spec(name, part) for name, part in _named(cross_names, cross_cache).items()},
    }
    return {
        TRANSLATE: (translate, [source_spec]),
        ENCODE: (encode, [source_spec]),
        DECODE_STEP: (decode_step, [step_specs]),
    }


def _frozen_signature(function, input_signature):
    """`function` traced and its weights frozen to constants, wrapped back
    into a `tf.function` with the same named inputs and outputs.

    The converter would keep weights read inside the decoding loop as
    READ_VARIABLE ops, which fail at run time inside WHILE; constants do not.
    """
    concrete = tf.function(function, input_signature=input_signature).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    output_names = sorted(concrete.structured_outputs)

    def call_frozen(*inputs):
        flat = tf.nest.flatten(inputs, expand_composites=True)
        outputs = frozen(*flat)
        structured = tf.nest.pack_sequence_as(concrete.structured_outputs, outputs)
        return {name: structured[name] for name in output_names}

    return tf.function(call_frozen, input_signature=input_signature).get_concrete_function()


def _converter(saved_model_dir: str, quantization: str) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[TRANSLATE, ENCODE, DECODE_STEP]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "dynamic_range":
        # One int8 scale per weight tensor rather than per output channel.
        # Per channel, every tensor entry of a weight (two or three: the
        # signatures share buffers, not tensors) stores a float32 scale and
        # an int64 zero point per output channel, 12 bytes against D bytes
        # of int8; and the tied target embedding is stored twice, per tensor
        # for GATHER (which takes nothing else) and per channel for the
        # output projection. Per tensor, both read one int8 table. (A private
        # converter flag: tensorflow is pinned to 2.21, and
        # tests/export/test_export_tflite.py checks the table is stored once.)
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return converter


def export_tflite(
    model: Seq2SeqTransformer,
    output_path: str | os.PathLike,
    *,
    quantization: str = "none",
    batch_size: int = 1,
    max_input_length: int | None = None,
    max_output_length: int | None = None,
    decoding: str = "greedy",
    beam_size: int = 4,
    length_penalty: float = 0.6,
) -> str:
    """Exports the encoder and the whole cached decoding loop as one .tflite.

    The model uses TFLite builtin ops only (no Select TF ops, no Flex
    delegate) and fixed shapes: N = `batch_size` rows of S =
    `max_input_length` source ids (source tokens then [END] = 3, padded
    with 0, as in training) and M = `max_output_length` output tokens.
    Tokenization is the client's job, with the run's vocabulary files (WordPiece
    text files or SentencePiece models).
    Three signatures share the weights:

    - "translate": `encoder_token_ids` int32 (N, S) -> `token_ids` int32
      (N, M), each row ended by [END] then 0, and `num_steps` int32 () (the
      steps run: later columns are 0); with `decoding="beam"` also `scores`
      float32 (N,) as `beam_search` gives them. Greedy scores are left out:
      their log-softmax over V costs about 13% of a batch-1 step here
      (`decode_step`'s logits give them to a client that needs them).
    - "encode": `encoder_token_ids` -> `encoder_padding_mask` bool (N, S)
      and `cross_attention_cache_{i}` float32, the keys then the values of
      each decoder block (`Seq2SeqTransformer.compute_cross_attention_cache`).
    - "decode_step": `token_ids` int32 (N,) (the token at position
      `index`, [START] = 2 first), `index` int32 (), `self_attention_cache_{i}`
      (zeros at index 0), and the outputs of "encode" -> `logits` float32
      (N, V) of the next token and the updated `self_attention_cache_{i}`.
      For clients that run their own loop (sampling, constrained decoding).

    A model trained under a mixed precision policy is exported in float32
    (`Seq2SeqTransformer.float32_copy`: the same float32 weights), as
    TFLite has no bfloat16 kernels.

    Quantization: "float16" stores weights as float16 (about half the size);
    "dynamic_range" stores weights as int8 with one scale per tensor and
    quantizes activations on the fly (about a quarter; the tied target
    embedding is one int8 table for both the lookup and the output
    projection); both run on any CPU.

    Args:
        model: a `Seq2SeqTransformer`, trained.
        output_path: the .tflite file to write (atomically, replacing it).
        quantization: "none", "float16" or "dynamic_range".
        batch_size: N.
        max_input_length: S; default the model's `max_sequence_length`.
        max_output_length: M; default the model's `max_sequence_length`.
        decoding: "greedy" or "beam" for the "translate" signature.
        beam_size, length_penalty: the beam search's settings.

    Returns:
        The absolute path of the .tflite file.

    Example:
    >>> export_tflite(model, "translator.tflite", quantization="dynamic_range",
    ...     max_input_length=32, max_output_length=32)  # doctest: +SKIP
    >>> from ai_edge_litert.interpreter import Interpreter  # doctest: +SKIP
    >>> translate = Interpreter("translator.tflite").get_signature_runner("translate")
    ... # doctest: +SKIP
    >>> translate(encoder_token_ids=ids)["token_ids"]  # ids: int32 (1, 32) # doctest: +SKIP
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {QUANTIZATIONS}. Received: "
            f"quantization={quantization!r}"
        )
    check_positive_int("batch_size", batch_size)
    model = check_seq2seq_model(model, "Export")
    if model.parts_compute_dtype != "float32":
        # TFLite has no bfloat16 kernels; mixed precision keeps float32 weights.
        model = model.float32_copy()
    check_decoding(decoding, beam_size, length_penalty, model.target_vocabulary_size)
    max_input_length, max_output_length = check_lengths(
        model, max_input_length, max_output_length
    )
    settings = {
        "batch_size": batch_size,
        "max_input_length": max_input_length,
        "max_output_length": max_output_length,
        "decoding": decoding,
        "beam_size": int(beam_size),
        "length_penalty": float(length_penalty),
    }
    functions = _signature_functions(model, settings)
    signatures = {
        name: _frozen_signature(function, input_signature)
        for name, (function, input_signature) in functions.items()
    }
    # The SavedModel only feeds the converter, which needs no gradients:
    # without custom gradients, activations that define one (SiLU's captures
    # its beta) save like any other op.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    with tempfile.TemporaryDirectory() as saved_model_dir:
        tf.saved_model.save(tf.Module(), saved_model_dir, signatures=signatures, options=options)
        flatbuffer = _converter(saved_model_dir, quantization).convert()
    write_file_atomic(output_path, flatbuffer)
    return os.path.abspath(os.fspath(output_path))
