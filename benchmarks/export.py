"""Export benchmark: per-sentence latency, file size and accuracy of the
Keras greedy search, the SavedModel and each TFLite variant.

All methods translate the same held-out sentences of the generated
French -> English corpus one at a time (batch 1) with greedy decoding.
Without `--run-dir` a small model is trained here first (a few minutes on
two CPU cores); with `--run-dir` the model, vocabularies and test.tsv of a
`keras-transformer train` run are used. Reported: p50 / p90 milliseconds
per sentence, sizes, exact token agreement with the float32 TFLite model
and with the Keras search, and corpus BLEU (sacrebleu) with its retention
relative to float32.

    python benchmarks/export.py [--run-dir RUN_DIR] [--sentences 100]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import sacrebleu  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from keras_transformer import build_seq2seq_transformer  # noqa: E402
from keras_transformer.data import (  # noqa: E402
    END_ID,
    PAD_ID,
    START_ID,
    build_tokenizer,
    detokenize,
    generate_pairs,
    load_vocabulary,
    make_dataset,
    train_wordpiece_vocabulary,
)
from keras_transformer.decoding import greedy_search  # noqa: E402
from keras_transformer.export import export_saved_model, export_tflite  # noqa: E402

QUANTIZATIONS = ("none", "float16", "dynamic_range")


def train_small_model(steps: int, num_test: int):
    """A 2 + 2 layer, D = 128 model on 8000 generated pairs; returns the
    model, vocabularies and `num_test` held-out pairs."""
    keras.utils.set_random_seed(1234)
    pairs = generate_pairs(8000 + num_test, seed=1234)
    train, test = pairs[:8000], pairs[8000:]
    source_vocabulary = train_wordpiece_vocabulary([fr for fr, _ in train], 1000)
    target_vocabulary = train_wordpiece_vocabulary([en for _, en in train], 1000)
    model = build_seq2seq_transformer(
        len(source_vocabulary), len(target_vocabulary), num_layers=2, hidden_dim=128,
        num_heads=4, intermediate_dim=512, dropout=0.1, max_sequence_length=32,
    )
    dataset = make_dataset(
        train, build_tokenizer(source_vocabulary), build_tokenizer(target_vocabulary),
        batch_size=64, max_sequence_length=32, shuffle=True, seed=1234,
    ).repeat()
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
    )
    model.fit(dataset, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    return model, source_vocabulary, target_vocabulary, test, {"max_sequence_length": 32}


def load_run_dir(run_dir: Path, num_test: int):
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    lines = (run_dir / "test.tsv").read_text(encoding="utf-8").splitlines()[:num_test]
    test = [tuple(line.split("\t")[:2]) for line in lines]
    return (
        model, load_vocabulary(run_dir / "source_vocabulary.txt"),
        load_vocabulary(run_dir / "target_vocabulary.txt"), test, config,
    )


def encoder_ids(tokenizer, sources: list[str], length: int) -> np.ndarray:
    """int32 (B, length): at most `length - 1` tokens, [END], 0-padding."""
    ids = np.zeros((len(sources), length), "int32")
    for row, source in enumerate(sources):
        tokens = np.asarray(tokenizer(source)).tolist()[: length - 1] + [END_ID]
        ids[row, : len(tokens)] = tokens
    return ids


def timed(run, inputs: list) -> tuple[list, np.ndarray]:
    """Outputs and per-call milliseconds of `run` over `inputs`, after one
    warm-up call (tracing, XLA compilation)."""
    run(inputs[0])
    outputs, milliseconds = [], []
    for item in inputs:
        start = time.perf_counter()
        outputs.append(run(item))
        milliseconds.append((time.perf_counter() - start) * 1000)
    return outputs, np.array(milliseconds)


def padded(tokens: np.ndarray, length: int) -> np.ndarray:
    tokens = np.asarray(tokens).reshape(-1)[:length]
    return np.pad(tokens, (0, length - len(tokens)))


def size_of(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--output-dir", type=Path)
    args = parser.parse_args()

    start = time.perf_counter()
    if args.run_dir:
        model, source_vocabulary, target_vocabulary, test, config = load_run_dir(
            args.run_dir, args.sentences
        )
    else:
        model, source_vocabulary, target_vocabulary, test, config = train_small_model(
            args.train_steps, args.sentences
        )
    length = int(config["max_sequence_length"])
    lowercase = bool(config.get("lowercase", False))
    print(f"model ready in {time.perf_counter() - start:.0f} s: {model.count_params():,} "
          f"parameters, vocabularies {len(source_vocabulary)} / {len(target_vocabulary)}, "
          f"lengths {length}; {len(test)} sentences; TF {tf.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    source_tokenizer = build_tokenizer(source_vocabulary, lowercase=lowercase)
    target_tokenizer = build_tokenizer(target_vocabulary, lowercase=lowercase)
    sources = [source for source, _ in test]
    references = [reference for _, reference in test]
    ids = encoder_ids(source_tokenizer, sources, length)

    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="export-benchmark-"))
    exported = {"saved_model": export_saved_model(
        model, source_vocabulary, target_vocabulary, output_dir / "saved_model" / "1",
        lowercase=lowercase, max_input_length=length, max_output_length=length,
        overwrite=True,
    )}
    for quantization in QUANTIZATIONS:
        exported[quantization] = export_tflite(
            model, output_dir / f"translator_{quantization}.tflite",
            quantization=quantization, max_input_length=length, max_output_length=length,
        )
    print(f"exported to {output_dir} in {time.perf_counter() - start:.0f} s")

    def keras_greedy(row: np.ndarray) -> np.ndarray:
        tokens, _ = greedy_search(
            model, row[None], start_token_id=START_ID, end_token_id=END_ID, max_length=length
        )
        return np.asarray(tokens)

    serving = tf.saved_model.load(exported["saved_model"]).signatures
    runs = {
        "Keras greedy_search (XLA)": keras_greedy,
        "SavedModel translate_ids": lambda row: serving["translate_ids"](
            encoder_token_ids=tf.constant(row[None])
        )["token_ids"].numpy(),
    }
    for quantization in QUANTIZATIONS:
        runner = Interpreter(model_path=exported[quantization]).get_signature_runner("translate")
        runs[f"TFLite {quantization}"] = (
            lambda row, runner=runner: runner(encoder_token_ids=row[None])["token_ids"]
        )
    tokens, latencies = {}, {}
    for name, run in runs.items():
        outputs, latencies[name] = timed(run, list(ids))
        tokens[name] = np.stack([padded(output, length) for output in outputs])
    texts, latencies["SavedModel serving_default (text)"] = timed(
        lambda text: serving["serving_default"](text=tf.constant([text]))["translations"]
        .numpy()[0].decode("utf-8"),
        sources,
    )

    float_tokens = tokens["TFLite none"]
    float_bleu = sacrebleu.corpus_bleu(detokenize(target_tokenizer, float_tokens), [references])
    print(f"\nSavedModel text == Keras greedy + detokenize: "
          f"{texts == detokenize(target_tokenizer, tokens['Keras greedy_search (XLA)'])}")
    print(f"\n{'method':<36} {'p50 ms':>8} {'p90 ms':>8} {'size KB':>9} {'size %':>7} "
          f"{'= f32':>6} {'= Keras':>8} {'BLEU':>6} {'BLEU %':>7}")
    float_size = size_of(exported["none"])
    for name, values in latencies.items():
        p50, p90 = np.percentile(values, [50, 90])
        size = agreement = keras_agreement = bleu = retention = ""
        key = name.removeprefix("TFLite ")
        if key in QUANTIZATIONS:
            size_bytes = size_of(exported[key])
            size = f"{size_bytes / 1024:9.0f} {100 * size_bytes / float_size:6.1f}%"
            agreement = f"{np.mean(np.all(tokens[name] == float_tokens, axis=1)):6.2f}"
            keras_tokens = tokens["Keras greedy_search (XLA)"]
            keras_agreement = f"{np.mean(np.all(tokens[name] == keras_tokens, axis=1)):8.2f}"
            score = sacrebleu.corpus_bleu(detokenize(target_tokenizer, tokens[name]), [references])
            bleu = f"{score.score:6.1f}"
            retention = f"{100 * score.score / max(float_bleu.score, 1e-9):6.1f}%"
        elif name.startswith("SavedModel"):
            size = f"{size_of(exported['saved_model']) / 1024:9.0f} {'':>7}"
        print(f"{name:<36} {p50:8.1f} {p90:8.1f} {size:>17} {agreement:>6} "
              f"{keras_agreement:>8} {bleu:>6} {retention:>7}")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
