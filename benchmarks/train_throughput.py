"""Training speed: our seq2seq Transformer against the same model composed
from KerasHub layers and from `keras.layers.MultiHeadAttention`.

Every model trains on the same synthetic batches (random token ids, ragged
lengths, padding 0) with the same loss (`MaskedSparseCategoricalCrossentropy`,
label smoothing 0.1), optimizer (`transformer_adam`) and dropout (0.1).
All variants are built in one process and timed interleaved, one training
step of each in turn, so that the load of a shared machine falls on all of
them alike; large matmuls are timed in the same rounds and give the peaks
for the MFU estimate: float32 and bfloat16, each the faster of XLA and
TensorFlow's own (oneDNN) kernel. On CPUs with AMX, oneDNN's bfloat16
matmul is several times its float32 one, and XLA's bfloat16 dot is not.
Peak memory (RSS) is measured for each variant in a fresh subprocess.

Reported per variant:
- ms/step: median wall time of one `train_on_batch` call;
- target tok/s: non-padding target tokens over the total time;
- MFU: model FLOPs per second over the measured matmul peak of the
  variant's compute dtype (bfloat16 for `_mixed_bfloat16`). Model FLOPs
  are 3x the forward matmul FLOPs (forward plus backward) of the padded
  batch shapes: projections, feed-forward, attention scores and values, and
  the output projection; embeddings, softmax and norms are not counted.
- peak RSS of a subprocess that builds the variant and trains a few steps.

Variants: `ours` (`build_seq2seq_transformer`), `ours_bucketed` (the same
examples grouped by length before batching, as `make_dataset` does),
`ours_no_xla_mixed_bfloat16`, `keras_hub` (keras_hub.layers
TokenAndPositionEmbedding, TransformerEncoder, TransformerDecoder and a
Dense output) and `keras_mha` (post-norm blocks of
`keras.layers.MultiHeadAttention`, Dense, LayerNormalization). Every
variant compiles its train step with XLA (`jit_compile=True`; Keras's
"auto" would mean no XLA on a machine without a GPU) unless its name ends
in `_no_xla`. TensorFlow's oneDNN kernels, off by default on CPUs without
AVX-512, change every row; the script prints `TF_ENABLE_ONEDNN_OPTS`, set it
before running to compare (docs/performance.md).

    python benchmarks/train_throughput.py [--configs small,base] [--steps 10]
        [--variants ours,keras_hub,keras_mha] [--no-memory]
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_transformer import build_seq2seq_transformer  # noqa: E402
from keras_transformer.data import padding_fraction  # noqa: E402
from keras_transformer.models import DECODER_INPUT, ENCODER_INPUT  # noqa: E402
from keras_transformer.training import (  # noqa: E402
    MaskedSparseCategoricalCrossentropy,
    dtype_policy_scope,
    transformer_adam,
)

START_ID = 1
FIRST_WORD_ID = 3
DROPOUT = 0.1
BUCKET_WIDTH = 4
MATMUL_SIZE = 2048
DEFAULT_VARIANTS = ("ours", "ours_no_xla", "keras_hub", "keras_hub_no_xla", "keras_mha")


@dataclasses.dataclass(frozen=True)
class Config:
    vocabulary_size: int
    hidden_dim: int
    num_heads: int
    intermediate_dim: int
    num_layers: int
    sequence_length: int
    batch_size: int


CONFIGS = {
    "small": Config(8000, 256, 4, 1024, 3, 32, 64),
    "base": Config(16000, 512, 8, 2048, 6, 32, 32),
}


def synthetic_examples(config: Config, num_examples: int, seed: int = 0):
    """Random (source, target) id lists, lengths uniform in [L/2, L - 1]."""
    rng = np.random.default_rng(seed)
    low, high = config.sequence_length // 2, config.sequence_length
    examples = []
    for _ in range(num_examples):
        source = rng.integers(FIRST_WORD_ID, config.vocabulary_size, rng.integers(low, high))
        target = rng.integers(FIRST_WORD_ID, config.vocabulary_size, rng.integers(low, high))
        examples.append((source, target))
    return examples


def pad_batch(examples, length):
    """Encoder ids, decoder ids (start id, then the target) and labels
    (the target then padding), each int32 (B, length), 0 = padding."""
    batch = np.zeros((3, len(examples), length), "int32")
    for row, (source, target) in enumerate(examples):
        batch[0, row, : len(source)] = source
        batch[1, row, 0] = START_ID
        batch[1, row, 1 : len(target)] = target[:-1]
        batch[2, row, : len(target)] = target
    return {ENCODER_INPUT: batch[0], DECODER_INPUT: batch[1]}, batch[2]


def make_batches(config: Config, num_batches: int, bucketed: bool):
    """The same examples, padded to `sequence_length`, or grouped by length
    and padded to the next multiple of `BUCKET_WIDTH` of each batch's longest."""
    examples = synthetic_examples(config, num_batches * config.batch_size)
    if bucketed:
        examples.sort(key=lambda pair: max(len(pair[0]), len(pair[1])))
    batches = []
    for start in range(0, len(examples), config.batch_size):
        chunk = examples[start : start + config.batch_size]
        length = config.sequence_length
        if bucketed:
            longest = max(max(len(source), len(target)) for source, target in chunk)
            length = -(-longest // BUCKET_WIDTH) * BUCKET_WIDTH
        batches.append(pad_batch(chunk, length))
    return batches


def batches_padding_fraction(batches) -> float:
    """`keras_transformer.data.padding_fraction` of the batches."""
    signature = (
        {
            ENCODER_INPUT: tf.TensorSpec((None, None), tf.int32),
            DECODER_INPUT: tf.TensorSpec((None, None), tf.int32),
        },
        tf.TensorSpec((None, None), tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature)
    return padding_fraction(dataset)


def training_flops(config: Config, batch_size: int, source_length: int, target_length: int):
    """3x the forward matmul FLOPs (2 per multiply-add) of one batch."""
    d, f, v = config.hidden_dim, config.intermediate_dim, config.vocabulary_size
    b, s, t = batch_size, source_length, target_length
    encoder_layer = 2 * b * s * (4 * d * d + 2 * d * f) + 4 * b * s * s * d
    decoder_layer = (
        2 * b * t * (4 * d * d + 2 * d * f)  # self-attention projections, feed-forward
        + 4 * b * t * t * d  # causal self-attention scores and values (all computed)
        + 2 * b * t * 2 * d * d  # cross-attention query and output projections
        + 2 * b * s * 2 * d * d  # cross-attention key and value projections
        + 4 * b * t * s * d  # cross-attention scores and values
    )
    logits = 2 * b * t * d * v
    forward = config.num_layers * (encoder_layer + decoder_layer) + logits
    return 3 * forward


class _KerasTokenAndPosition(keras.layers.Layer):
    """Token plus learned position embeddings from plain Keras layers."""

    def __init__(self, vocabulary_size, sequence_length, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.tokens = keras.layers.Embedding(vocabulary_size, hidden_dim, mask_zero=True)
        self.positions = keras.layers.Embedding(sequence_length, hidden_dim)

    def call(self, token_ids):
        positions = keras.ops.arange(keras.ops.shape(token_ids)[1])  # (T,)
        return self.tokens(token_ids) + self.positions(positions)[None]  # (B, T, D)

    def compute_mask(self, token_ids, mask=None):
        return keras.ops.not_equal(token_ids, 0)


def _keras_mha_model(config: Config) -> keras.Model:
    """Post-norm encoder-decoder from keras.layers.MultiHeadAttention."""
    d, heads = config.hidden_dim, config.num_heads

    def add_and_norm(x, y):
        y = keras.layers.Dropout(DROPOUT)(y)
        return keras.layers.LayerNormalization(epsilon=1e-5)(keras.layers.Add()([x, y]))

    def feed_forward(x):
        y = keras.layers.Dense(config.intermediate_dim, activation="relu")(x)
        return add_and_norm(x, keras.layers.Dense(d)(y))

    def attention(query, value, causal):
        layer = keras.layers.MultiHeadAttention(heads, d // heads, dropout=DROPOUT)
        return add_and_norm(query, layer(query, value, use_causal_mask=causal))

    encoder_ids = keras.Input((None,), dtype="int32", name=ENCODER_INPUT)
    decoder_ids = keras.Input((None,), dtype="int32", name=DECODER_INPUT)
    length, v = config.sequence_length, config.vocabulary_size
    x = keras.layers.Dropout(DROPOUT)(_KerasTokenAndPosition(v, length, d)(encoder_ids))
    for _ in range(config.num_layers):
        x = feed_forward(attention(x, x, causal=False))
    y = keras.layers.Dropout(DROPOUT)(_KerasTokenAndPosition(v, length, d)(decoder_ids))
    for _ in range(config.num_layers):
        y = feed_forward(attention(attention(y, y, causal=True), x, causal=False))
    logits = keras.layers.Dense(v, dtype="float32")(y)
    return keras.Model({ENCODER_INPUT: encoder_ids, DECODER_INPUT: decoder_ids}, logits)


def _keras_hub_model(config: Config) -> keras.Model:
    """The same model from keras_hub.layers, with an untied Dense output."""
    d, v, length = config.hidden_dim, config.vocabulary_size, config.sequence_length
    block_kwargs = {
        "intermediate_dim": config.intermediate_dim,
        "num_heads": config.num_heads,
        "dropout": DROPOUT,
    }
    encoder_ids = keras.Input((None,), dtype="int32", name=ENCODER_INPUT)
    decoder_ids = keras.Input((None,), dtype="int32", name=DECODER_INPUT)
    embedding = keras_hub.layers.TokenAndPositionEmbedding
    x = embedding(v, length, d, mask_zero=True)(encoder_ids)
    x = keras.layers.Dropout(DROPOUT)(x)
    for _ in range(config.num_layers):
        x = keras_hub.layers.TransformerEncoder(**block_kwargs)(x)
    y = embedding(v, length, d, mask_zero=True)(decoder_ids)
    y = keras.layers.Dropout(DROPOUT)(y)
    for _ in range(config.num_layers):
        y = keras_hub.layers.TransformerDecoder(**block_kwargs)(y, x)
    logits = keras.layers.Dense(v, dtype="float32")(y)
    return keras.Model({ENCODER_INPUT: encoder_ids, DECODER_INPUT: decoder_ids}, logits)


def _our_model(config: Config) -> keras.Model:
    return build_seq2seq_transformer(
        config.vocabulary_size,
        config.vocabulary_size,
        num_layers=config.num_layers,
        hidden_dim=config.hidden_dim,
        num_heads=config.num_heads,
        intermediate_dim=config.intermediate_dim,
        dropout=DROPOUT,
        max_sequence_length=config.sequence_length,
    )


def build_variant(name: str, config: Config) -> keras.Model:
    """A compiled model of variant `name` (see the module docstring)."""
    builders = {"ours": _our_model, "keras_hub": _keras_hub_model, "keras_mha": _keras_mha_model}
    base_name = name.split("_no_xla")[0].split("_bucketed")[0].split("_mixed_")[0]
    if base_name not in builders:
        raise ValueError(f"Unknown variant {name!r}; known: {sorted(builders)} with "
                         "optional suffixes _no_xla, _bucketed, _mixed_bfloat16, _mixed_float16.")
    policy = "mixed_" + name.split("_mixed_")[1] if "_mixed_" in name else "float32"
    with dtype_policy_scope(policy):
        model = builders[base_name](config)
    model.compile(
        optimizer=transformer_adam(config.hidden_dim),
        loss=MaskedSparseCategoricalCrossentropy(label_smoothing=0.1),
        # Not "auto": Keras resolves it to no XLA on a machine without GPU.
        jit_compile="_no_xla" not in name,
    )
    return model


def _matmul_sum(matrix):
    return tf.reduce_sum(tf.cast(tf.matmul(matrix, matrix), "float32"))


# The matmuls of the peaks: (dtype, XLA) -> a compiled function.
MATMULS = {
    (dtype, jit): tf.function(_matmul_sum, jit_compile=jit)
    for dtype in ("float32", "bfloat16")
    for jit in (True, False)
}


def _matmul_rates(matrices) -> dict:
    """FLOP/s of one run of each of `MATMULS`."""
    rates = {}
    for (dtype, jit), matmul in MATMULS.items():
        start = time.perf_counter()
        matmul(matrices[dtype]).numpy()
        rates[dtype, jit] = 2 * MATMUL_SIZE**3 / (time.perf_counter() - start)
    return rates


def matmul_peaks(rates: list) -> dict:
    """dtype -> the faster engine's median FLOP/s over the rounds."""
    return {
        dtype: max(statistics.median(rate[dtype, jit] for rate in rates) for jit in (True, False))
        for dtype in ("float32", "bfloat16")
    }


def compute_dtype(variant: str) -> str:
    return "bfloat16" if variant.endswith("_mixed_bfloat16") else "float32"


def time_interleaved(models: dict, batches: dict, steps: int):
    """Warms every model up on all its batches, then runs `steps` rounds of
    one step per model and one matmul of each `MATMULS`. Returns per-model
    step times and the matmul FLOP rates of every round."""
    for name, model in models.items():
        for inputs, labels in batches[name]:
            model.train_on_batch(inputs, labels)
    matrix = tf.random.normal((MATMUL_SIZE, MATMUL_SIZE))
    matrices = {"float32": matrix, "bfloat16": tf.cast(matrix, "bfloat16")}
    _matmul_rates(matrices)
    times = {name: [] for name in models}
    rates = []
    for step in range(steps):
        rates.append(_matmul_rates(matrices))
        for name, model in models.items():
            inputs, labels = batches[name][step % len(batches[name])]
            start = time.perf_counter()
            model.train_on_batch(inputs, labels)
            times[name].append(time.perf_counter() - start)
    return times, rates


def summarize(config: Config, batches, times, peak: float) -> dict:
    used = [batches[step % len(batches)] for step in range(len(times))]
    tokens = sum(int(np.count_nonzero(labels)) for _, labels in used)
    flops = sum(
        training_flops(config, *inputs[ENCODER_INPUT].shape, inputs[DECODER_INPUT].shape[1])
        for inputs, _ in used
    )
    total = sum(times)
    return {
        "ms_per_step": 1000 * statistics.median(times),
        "target_tokens_per_second": tokens / total,
        "mfu": flops / total / peak,
    }


def peak_rss_mb(variant: str, config_name: str, steps: int) -> float:
    """Peak RSS in MB of a subprocess that builds `variant` and trains."""
    command = [sys.executable, __file__, "--memory-of", variant, "--configs", config_name,
               "--steps", str(steps)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss_mb"]


def _memory_child(variant: str, config: Config, steps: int):
    model = build_variant(variant, config)
    batches = make_batches(config, steps, bucketed="_bucketed" in variant)
    for inputs, labels in batches:
        model.train_on_batch(inputs, labels)
    print(json.dumps({"peak_rss_mb": _peak_rss_kb() / 1024}))


def _peak_rss_kb() -> int:
    """VmHWM, the peak RSS of this process. (`getrusage`'s ru_maxrss would
    start from the parent's peak: Linux keeps it across fork and exec.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line; peak RSS needs Linux.")


def run_config(config_name: str, variants, steps: int, num_batches: int, memory: bool):
    config = CONFIGS[config_name]
    padded = make_batches(config, num_batches, bucketed=False)
    bucketed = make_batches(config, num_batches, bucketed=True)
    batches = {name: bucketed if "_bucketed" in name else padded for name in variants}
    models = {name: build_variant(name, config) for name in variants}
    times, rates = time_interleaved(models, batches, steps)
    peaks = matmul_peaks(rates)
    print(f"\n== {config_name}: {config}", flush=True)
    for (dtype, jit) in MATMULS:
        rate = statistics.median(rate[dtype, jit] for rate in rates)
        print(f"matmul {MATMUL_SIZE}^3 {dtype:8} {'XLA' if jit else 'no XLA':6}: "
              f"median {rate / 1e9:7.1f} GFLOP/s")
    print(f"MFU peaks (the faster engine): float32 {peaks['float32'] / 1e9:.1f}, bfloat16 "
          f"{peaks['bfloat16'] / 1e9:.1f} GFLOP/s; load average {os.getloadavg()[0]:.2f}")
    print(f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')} "
          "(unset: TensorFlow's default for this CPU, docs/performance.md)")
    print(f"padding fraction: padded to length {config.sequence_length} "
          f"{batches_padding_fraction(padded):.3f}, bucketed "
          f"{batches_padding_fraction(bucketed):.3f}")
    print(f"{'variant':24} {'ms/step':>9} {'tgt tok/s':>10} {'MFU':>6}", flush=True)
    results = {
        name: summarize(config, batches[name], times[name], peaks[compute_dtype(name)])
        for name in variants
    }
    for name, result in results.items():
        print(f"{name:24} {result['ms_per_step']:9.1f} "
              f"{result['target_tokens_per_second']:10.0f} {result['mfu']:6.3f}", flush=True)
    peers = {name: r for name, r in results.items() if not name.startswith("ours")}
    if peers:
        best = min(peers, key=lambda name: peers[name]["ms_per_step"])
        for name, result in results.items():
            if name.startswith("ours"):
                speedup = peers[best]["ms_per_step"] / result["ms_per_step"]
                # Peers of the same settings (suffix) as this variant.
                alike = [peer for peer in peers
                         if peer.removeprefix("keras_hub").removeprefix("keras_mha")
                         == name.removeprefix("ours")]
                same = ", ".join(
                    f"{peers[peer]['ms_per_step'] / result['ms_per_step']:.2f}x {peer}"
                    for peer in alike
                )
                print(f"{name} is {speedup:.2f}x the best peer ({best})"
                      + (f"; {same}" if same else ""), flush=True)
    if memory:
        for name, result in results.items():
            result["peak_rss_mb"] = peak_rss_mb(name, config_name, 3)
            print(f"{name:24} peak RSS {result['peak_rss_mb']:6.0f} MB", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="small,base")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--batches", type=int, default=5, help="distinct batches")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS subprocesses")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        _memory_child(args.memory_of, CONFIGS[args.configs], args.steps)
        return
    variants = args.variants.split(",")
    results = {
        name: run_config(name, variants, args.steps, args.batches, not args.no_memory)
        for name in args.configs.split(",")
    }
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
