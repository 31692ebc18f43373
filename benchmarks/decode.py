"""Decoding speed: our cached greedy and beam search against an uncached
loop and a KerasHub-layer model decoding with KerasHub's own caches.

All methods use the same random weights: the KerasHub model receives a copy
of ours, so its greedy tokens must equal ours (checked and printed). Our
searches also run as the `.tflite` that `export_tflite` writes (the whole
loop in one model, run by the LiteRT interpreter on `--tflite-threads`
threads), with float32 weights and with int8 weights ("dynamic_range");
their tokens are compared with the XLA search's. `--no-tflite` skips them
(each export takes about 20 s). Every method generates exactly
`--new-tokens` tokens: the end token's embedding row is zero, so its tied
logit is 0 and never the largest of V random logits (the exported loop's
step count is checked). At batch 1 it also times what a user runs with
text (`--no-user-paths` skips it): the exported SavedModel's
`serving_default` (XLA loop) and `Translator.translate` of one sentence,
with its default backend and with "xla", against issue #21's target of 3x
the KerasHub anchor. Reported:
new tokens per second across the batch (median over `--repeats` timed runs,
after one warm-up run that compiles), the load average while it ran (the
figures are only comparable at similar load), and the ratios against the
targets of issue #4 with a met / MISSED verdict.

    python benchmarks/decode.py [--repeats 5] [--batch-sizes 1,32]
"""

import argparse
import itertools
import math
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_hub_anchor import keras_hub_forward, keras_hub_greedy_function, keras_hub_layers

from keras_transformer import build_seq2seq_transformer
from keras_transformer.data import END_ID, RESERVED_TOKENS, START_ID
from keras_transformer.decoding import beam_search, greedy_search
from keras_transformer.export import export_saved_model, export_tflite
from keras_transformer.models import DECODER_INPUT, ENCODER_INPUT
from keras_transformer.training import dtype_policy_scope
from keras_transformer.translation import TranslationConfig, Translator

VOCABULARY_SIZE = 8000
HIDDEN_DIM = 256
NUM_HEADS = 4
INTERMEDIATE_DIM = 1024
NUM_LAYERS = 3
MAX_SEQUENCE_LENGTH = 128
# The exported loop starts with START_ID and stops at END_ID; the Python
# searches use the same start token so that their tokens can be compared.
START = START_ID
# The exported variants and their `export_tflite` quantization.
TFLITE_VARIANTS = {"TFLite float32": "none", "TFLite int8 weights": "dynamic_range"}


def label(decoding: str, variant: str) -> str:
    """The report's name of one of our searches, e.g. "ours beam 4 (XLA)"."""
    return f"ours {'beam 4' if decoding == 'beam' else 'greedy'} ({variant})"


GREEDY, BEAM = label("greedy", "XLA"), label("beam", "XLA")
KERAS_HUB, UNCACHED = "KerasHub cached (XLA)", "uncached recompute (graph)"
# What users run at batch 1 (issue #21): text in, text out.
SAVED_MODEL = "SavedModel serving_default (XLA)"
TRANSLATOR = "Translator.translate greedy (auto)"
TRANSLATOR_XLA = "Translator.translate greedy (xla)"
TRANSLATOR_BEAM = "Translator.translate beam 4 (auto)"
# Issue #21: each of these at least 3x KerasHub cached greedy at batch 1.
USER_PATH_TARGETS = {SAVED_MODEL: 3.0, TRANSLATOR: 3.0}
# Issue #4: ours greedy at least this many times faster than KerasHub cached,
# per batch size, and beam 4 at most this many times the time of greedy.
GREEDY_SPEEDUP_TARGETS = {1: 3.0, 32: 2.0}
BEAM_COST_TARGET = 2.5


def build_models(dtype_policy: str = "float32") -> tuple[keras.Model, dict]:
    """Our model (learned positions, as KerasHub's) and KerasHub layers
    holding the same weights, both under `dtype_policy`."""
    with dtype_policy_scope(dtype_policy):
        return _build_models()


def _build_models() -> tuple[keras.Model, dict]:
    model = build_seq2seq_transformer(
        VOCABULARY_SIZE,
        VOCABULARY_SIZE,
        num_layers=NUM_LAYERS,
        hidden_dim=HIDDEN_DIM,
        num_heads=NUM_HEADS,
        intermediate_dim=INTERMEDIATE_DIM,
        dropout=0.0,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        position_encoding="learned",
    )
    # A zero row gives the end token a logit of exactly 0 (tied output
    # projection): never the argmax, so the exported loop runs every step.
    table = model.decoder_embedding.embeddings
    table.assign(np.where(np.arange(VOCABULARY_SIZE)[:, None] == END_ID, 0.0, table.numpy()))
    hub = keras_hub_layers(
        VOCABULARY_SIZE, VOCABULARY_SIZE, num_layers=NUM_LAYERS, hidden_dim=HIDDEN_DIM,
        num_heads=NUM_HEADS, intermediate_dim=INTERMEDIATE_DIM,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
    ids = np.ones((1, 4), "int32")
    keras_hub_forward(hub, ids, ids)  # builds the layers
    _copy_weights(model, hub)
    return model, hub


def _copy_attention(ours, theirs):
    heads, head_dim = NUM_HEADS, HIDDEN_DIM // NUM_HEADS
    for mine, hub_dense in (
        (ours.query_dense, theirs._query_dense),
        (ours.key_dense, theirs._key_dense),
        (ours.value_dense, theirs._value_dense),
    ):
        hub_dense.kernel.assign(np.reshape(mine.kernel.numpy(), (-1, heads, head_dim)))
        hub_dense.bias.assign(np.reshape(mine.bias.numpy(), (heads, head_dim)))
    theirs._output_dense.kernel.assign(
        np.reshape(ours.output_dense.kernel.numpy(), (heads, head_dim, -1))
    )
    theirs._output_dense.bias.assign(ours.output_dense.bias.numpy())


def _copy_layer(source, target):
    for mine, theirs in zip(source.weights, target.weights, strict=True):
        theirs.assign(mine.numpy())


def _copy_weights(model, hub):
    """Our weights into the KerasHub layers. Our token embeddings are scaled
    by sqrt(D); KerasHub's are not, so its table is ours times sqrt(D) (its
    tied logits are then scaled by sqrt(D), which keeps every argmax)."""
    for name in ("encoder_embedding", "decoder_embedding"):
        ours, theirs = getattr(model, name), hub[name]
        theirs.token_embedding.embeddings.assign(ours.embeddings.numpy() * math.sqrt(HIDDEN_DIM))
        theirs.position_embedding.position_embeddings.assign(
            ours.position_layer.position_embeddings.numpy()
        )
    for ours, theirs in zip(model.encoder.blocks, hub["encoder_layers"]):
        _copy_attention(ours.self_attention, theirs._self_attention_layer)
        _copy_layer(ours.attention_norm, theirs._self_attention_layer_norm)
        _copy_layer(ours.feed_forward.intermediate_dense, theirs._feedforward_intermediate_dense)
        _copy_layer(ours.feed_forward.output_dense, theirs._feedforward_output_dense)
        _copy_layer(ours.feed_forward_norm, theirs._feedforward_layer_norm)
    for ours, theirs in zip(model.decoder.blocks, hub["decoder_layers"]):
        _copy_attention(ours.self_attention, theirs._self_attention_layer)
        _copy_layer(ours.self_attention_norm, theirs._self_attention_layer_norm)
        _copy_attention(ours.cross_attention, theirs._cross_attention_layer)
        _copy_layer(ours.cross_attention_norm, theirs._cross_attention_layer_norm)
        _copy_layer(ours.feed_forward.intermediate_dense, theirs._feedforward_intermediate_dense)
        _copy_layer(ours.feed_forward.output_dense, theirs._feedforward_output_dense)
        _copy_layer(ours.feed_forward_norm, theirs._feedforward_layer_norm)


def last_logits_function(model: keras.Model):
    """The full model's logits at the last target position, traced once as a
    TensorFlow graph for any lengths (XLA would recompile for every length)."""
    ids_spec = tf.TensorSpec((None, None), tf.int32)
    return tf.function(
        lambda inputs: model(inputs)[:, -1],
        input_signature=[{ENCODER_INPUT: ids_spec, DECODER_INPUT: ids_spec}],
    )


def uncached_greedy(last_logits, encoder_token_ids: np.ndarray, new_tokens: int):
    """Greedy decoding that runs the full model on the growing prefix at
    every step: no cache, the encoder re-run each step."""
    prefix = np.full((len(encoder_token_ids), 1), START, "int32")
    for _ in range(new_tokens):
        logits = last_logits({ENCODER_INPUT: encoder_token_ids, DECODER_INPUT: prefix})
        logits = tf.where(tf.range(VOCABULARY_SIZE) == 0, -1e9, logits)
        next_ids = tf.argmax(logits, axis=-1, output_type=tf.int32).numpy()
        prefix = np.concatenate([prefix, next_ids[:, None]], axis=1)
    return prefix[:, 1:]


def tflite_runs(model, source: np.ndarray, new_tokens: int, threads: int, directory: str,
                reference: dict) -> dict:
    """`export_tflite` files of `model` for `source`'s batch size, greedy and
    beam for each of `TFLITE_VARIANTS`, as timed runs. Prints each file's
    size, its step count and the fraction of its tokens equal to
    `reference[decoding]` (the XLA search's tokens)."""
    batch_size, source_length = source.shape
    runs = {}
    for (variant, quantization), decoding in itertools.product(
        TFLITE_VARIANTS.items(), ("greedy", "beam")
    ):
        name = label(decoding, variant)
        path = export_tflite(
            model, os.path.join(directory, f"{quantization}_{decoding}_{batch_size}.tflite"),
            quantization=quantization, batch_size=batch_size, max_input_length=source_length,
            max_output_length=new_tokens, decoding=decoding,
        )
        translate = Interpreter(model_path=path, num_threads=threads).get_signature_runner(
            "translate"
        )
        outputs = translate(encoder_token_ids=source)
        agreement = np.mean(outputs["token_ids"] == reference[decoding])
        print(
            f"batch {batch_size}: {name}: {os.path.getsize(path) / 2**20:.1f} MB, "
            f"{int(outputs['num_steps'])} steps, tokens == XLA's: {agreement:.3f}"
        )
        if int(outputs["num_steps"]) != new_tokens:
            raise RuntimeError(f"{name} stopped after {outputs['num_steps']} steps")
        runs[name] = lambda translate=translate: translate(encoder_token_ids=source)
    return runs


def user_path_runs(model, source: np.ndarray, new_tokens: int, directory: str,
                   reference: np.ndarray) -> dict:
    """The batch-1 paths a user takes with text, as timed runs: the exported
    SavedModel's `serving_default` (strings in and out, XLA loop, the
    default export) and `Translator.translate` with its default backend
    choice ("auto": the exported LiteRT loop for one sentence) and with
    "xla". The vocabulary is one WordPiece word "w<id>" per id, so a
    sentence of those words tokenizes to `source`'s ids (checked, as are
    the Translator's tokens against `reference`, the XLA search's)."""
    vocabulary = RESERVED_TOKENS + [f"w{i}" for i in range(len(RESERVED_TOKENS), VOCABULARY_SIZE)]
    ids = source[0].tolist()
    text = " ".join(vocabulary[i] for i in ids[: ids.index(END_ID)])
    config = TranslationConfig(
        num_layers=NUM_LAYERS, hidden_dim=HIDDEN_DIM, num_heads=NUM_HEADS,
        intermediate_dim=INTERMEDIATE_DIM, dropout=0.0, position_encoding="learned",
        max_sequence_length=new_tokens, source_vocabulary_size=VOCABULARY_SIZE,
        target_vocabulary_size=VOCABULARY_SIZE, beam_size=4,
    )
    translators = {
        backend: Translator(model, config, vocabulary, vocabulary, run_dir=None,
                            backend=backend)
        for backend in ("auto", "xla")
    }
    for backend, translator in translators.items():
        if translator.source_token_ids([text])[0] != ids:
            raise RuntimeError("the benchmark sentence does not tokenize to its ids")
        tokens = translator.translate_token_ids([ids], beam_size=1)[0]
        print(f"batch 1: Translator ({translator.choose_backend(1)}) tokens == XLA "
              f"search's: {tokens == reference[0].tolist()}")
    path = export_saved_model(
        model, vocabulary, vocabulary, os.path.join(directory, "saved_model"),
        max_input_length=source.shape[1], max_output_length=new_tokens,
    )
    serving_default = tf.saved_model.load(path).signatures["serving_default"]
    text_tensor = tf.constant([text])
    auto, xla = translators["auto"], translators["xla"]
    return {
        SAVED_MODEL: lambda: serving_default(text=text_tensor)["translations"].numpy(),
        TRANSLATOR: lambda: auto.translate([text], beam_size=1),
        TRANSLATOR_XLA: lambda: xla.translate([text], beam_size=1),
        TRANSLATOR_BEAM: lambda: auto.translate([text], beam_size=4),
    }


def median_seconds(runs: dict, repeats: int) -> dict:
    """Median wall time of each run. Runs are interleaved round by round so
    that changes in the machine's load hit every method alike."""
    for run in runs.values():
        run()  # warm-up: traces and compiles
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def _ratio_rows(seconds: dict, batch_size: int) -> list[tuple[str, float, str]]:
    """(ratio, value, target) rows of one batch size; the targets are issue #4's,
    applied to the XLA searches and to each exported pair."""
    speedup_target = GREEDY_SPEEDUP_TARGETS.get(batch_size)
    speedup_target = "" if speedup_target is None else f">= {speedup_target:g}"
    rows = []
    for variant in ("XLA", *TFLITE_VARIANTS):
        greedy, beam = label("greedy", variant), label("beam", variant)
        if greedy not in seconds:
            continue
        suffix = "" if variant == "XLA" else f" ({variant})"
        rows += [
            (f"greedy speedup vs KerasHub{suffix}", seconds[KERAS_HUB] / seconds[greedy],
             speedup_target),
            (f"beam 4 / greedy time{suffix}", seconds[beam] / seconds[greedy],
             f"<= {BEAM_COST_TARGET:g}"),
        ]
    for name, target in USER_PATH_TARGETS.items():
        if name in seconds:
            rows.append((f"{name} vs KerasHub", seconds[KERAS_HUB] / seconds[name],
                         f">= {target:g}"))
    return rows + [("greedy speedup vs uncached", seconds[UNCACHED] / seconds[GREEDY], "")]


def _verdict(value: float, target: str) -> str:
    if not target:
        return ""
    bound = float(target.split()[1])
    met = value >= bound if target.startswith(">=") else value <= bound
    return "met" if met else "MISSED"


def print_report(results: dict, new_tokens: int) -> None:
    """Tokens/s per method and batch size, the load while each batch size
    ran, and the ratios against the targets of issue #4."""
    batch_sizes = list(results)
    columns = "".join(f"{f'batch {size}':>16}" for size in batch_sizes)
    print(f"\n{'new tokens / s':<40}{columns}")
    methods = dict.fromkeys(name for size in batch_sizes for name in results[size]["seconds"])
    for method in methods:
        cells = "".join(
            f"{size * new_tokens / results[size]['seconds'][method]:16.0f}"
            if method in results[size]["seconds"] else f"{'-':>16}"
            for size in batch_sizes
        )
        print(f"{method:<40}{cells}")
    loads = "".join(f"{results[size]['load']:16.2f}" for size in batch_sizes)
    print(f"{'load average (1 min) after timing':<40}{loads}")
    print(f"\n{'ratio':<50}{'batch':>6}{'value':>9}  {'target':<8} verdict")
    for size in batch_sizes:
        for name, value, target in _ratio_rows(results[size]["seconds"], size):
            print(f"{name:<50}{size:>6}{value:9.2f}  {target:<8} {_verdict(value, target)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--uncached-repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--source-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--tflite-threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-tflite", action="store_true", help="skip the exported runs")
    parser.add_argument("--no-user-paths", action="store_true",
                        help="skip the batch-1 SavedModel and Translator runs")
    parser.add_argument("--dtype-policy", default="float32",
                        help="Keras dtype policy of both models, e.g. mixed_bfloat16 (the "
                        "exported and user-path runs are float32 only: they are skipped)")
    args = parser.parse_args()
    if args.dtype_policy != "float32":
        args.no_tflite = args.no_user_paths = True

    keras.utils.set_random_seed(0)
    model, hub = build_models(args.dtype_policy)
    rng = np.random.default_rng(0)
    settings = {"start_token_id": START, "end_token_id": None, "max_length": args.new_tokens}
    print(
        f"config: vocabulary {VOCABULARY_SIZE}, hidden {HIDDEN_DIM}, {NUM_HEADS} heads, "
        f"intermediate {INTERMEDIATE_DIM}, {NUM_LAYERS}+{NUM_LAYERS} layers; source "
        f"{args.source_length} tokens, {args.new_tokens} new tokens; median of {args.repeats} "
        f"runs ({args.uncached_repeats} uncached); {os.cpu_count()} CPUs, TF {tf.__version__}; "
        f"TFLite runs on {args.tflite_threads} threads; dtype policy {args.dtype_policy}"
    )
    print(f"load average (1, 5, 15 min) at start: {os.getloadavg()}")
    results = {}
    last_logits = last_logits_function(model)
    for batch_size in (int(size) for size in args.batch_sizes.split(",")):
        source = rng.integers(
            len(RESERVED_TOKENS), VOCABULARY_SIZE, (batch_size, args.source_length), dtype="int32"
        )
        source[:, -1] = END_ID  # as the Translator and the SavedModel end a sentence
        hub_greedy = keras_hub_greedy_function(
            hub, args.new_tokens, lambda x: hub["decoder_embedding"].token_embedding(
                x, reverse=True
            ), START,
        )
        ours = greedy_search(model, source, **settings)[0].numpy()
        hub_tokens = hub_greedy(tf.constant(source)).numpy()
        uncached_tokens = uncached_greedy(last_logits, source, min(args.new_tokens, 8))
        print(
            f"batch {batch_size}: KerasHub tokens == ours: {np.array_equal(hub_tokens, ours)}; "
            f"uncached == ours (first 8): {np.array_equal(uncached_tokens, ours[:, :8])}"
        )
        runs = {
            GREEDY: lambda: greedy_search(model, source, **settings)[0].numpy(),
            BEAM: lambda: beam_search(model, source, **settings)[0].numpy(),
            KERAS_HUB: lambda: hub_greedy(tf.constant(source)).numpy(),
        }
        # The interpreters read their files while they run: keep them until timed.
        with tempfile.TemporaryDirectory() as directory:
            if not args.no_tflite:
                reference = {"greedy": ours, "beam": runs[BEAM]()}
                runs.update(tflite_runs(
                    model, source, args.new_tokens, args.tflite_threads, directory, reference
                ))
            if batch_size == 1 and not args.no_user_paths:
                runs.update(user_path_runs(model, source, args.new_tokens, directory, ours))
            seconds = median_seconds(runs, args.repeats)
        # Timed apart, with fewer repeats: a run takes seconds.
        uncached_run = {
            UNCACHED: lambda: uncached_greedy(last_logits, source, args.new_tokens)
        }
        seconds.update(median_seconds(uncached_run, args.uncached_repeats))
        results[batch_size] = {"seconds": seconds, "load": os.getloadavg()[0]}
    print_report(results, args.new_tokens)


if __name__ == "__main__":
    main()
