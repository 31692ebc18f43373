"""Serving under load: the exported SavedModel called from many threads.

The `serving_default` signature (strings in, translations out) serves
`--requests` requests of mixed lengths, each a batch of one string: held-out
sentences of the generated French -> English corpus, two to four of them
joined, and the hard inputs a server meets (empty, whitespace only, very
long, other scripts, emoji, invalid UTF-8). They run once from one thread,
for the reference outputs, then from `--threads` threads
(`concurrent.futures.ThreadPoolExecutor`). Both runs share one time bound,
`--time-limit` seconds: requests not done by then count as timed out.
Decoding is greedy unless `--decoding beam`.
Reported per run: errors, throughput (requests per second, wall clock) and
p50 / p90 latency per request; for the threaded run also the requests whose
translation or score differs from the single-threaded run. The exit status
is 1 unless there are no errors, no time-outs and no mismatches.

Without `--run-dir` a small model (2 + 2 layers, D = 128) is trained here
briefly; with `--run-dir` the model, vocabularies and test.tsv of a
`keras-transformer train` run are exported and used.

    python benchmarks/serving_load.py [--run-dir RUN_DIR] [--requests 1000]
        [--threads 8] [--time-limit 600]
"""

import argparse
import concurrent.futures
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402, F401  (registers the tokenizer ops of the SavedModel)

from keras_transformer import build_seq2seq_transformer  # noqa: E402
from keras_transformer.data import (  # noqa: E402
    PAD_ID,
    build_tokenizer,
    generate_pairs,
    make_dataset,
    train_wordpiece_vocabulary,
)
from keras_transformer.export import export_from_run_dir, export_saved_model  # noqa: E402

MAX_SEQUENCE_LENGTH = 32
NUM_TRAIN = 8000
HARD_INPUTS = (
    "",
    " \t\n  ",
    "Je mange une pomme rouge. " * 200,
    "Привет, как дела?",
    "我是学生。",
    "مرحبا بالعالم",
    "🙂 ### ??? ...",
    "[END] [START] [PAD]",
    b"caf\xe9 au lait",
)


@dataclasses.dataclass
class Result:
    """The outcome of one request."""

    translation: bytes | None = None
    score: float | None = None
    milliseconds: float | None = None
    error: str | None = None


def train_small_model(
    steps: int, num_test: int, output_dir: Path, decoding: str
) -> tuple[str, list[str]]:
    """Trains a 2 + 2 layer model briefly, exports it to `output_dir`;
    returns the SavedModel path and `num_test` held-out source sentences."""
    keras.utils.set_random_seed(1234)
    pairs = generate_pairs(NUM_TRAIN + num_test, seed=1234)
    train, test = pairs[:NUM_TRAIN], pairs[NUM_TRAIN:]
    source_vocabulary = train_wordpiece_vocabulary([fr for fr, _ in train], 1000)
    target_vocabulary = train_wordpiece_vocabulary([en for _, en in train], 1000)
    model = build_seq2seq_transformer(
        len(source_vocabulary), len(target_vocabulary), num_layers=2, hidden_dim=128,
        num_heads=4, intermediate_dim=512, dropout=0.1, max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
    dataset = make_dataset(
        train, build_tokenizer(source_vocabulary), build_tokenizer(target_vocabulary),
        batch_size=64, max_sequence_length=MAX_SEQUENCE_LENGTH, shuffle=True, seed=1234,
    ).repeat()
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
    )
    model.fit(dataset, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    path = export_saved_model(
        model, source_vocabulary, target_vocabulary, output_dir / "translator" / "1",
        decoding=decoding, overwrite=True,
    )
    return path, [source for source, _ in test]


def export_run_dir(run_dir: Path, output_dir: Path, decoding: str) -> tuple[str, list[str]]:
    """Exports the SavedModel of a run directory; returns its path and the
    source sentences of RUN_DIR/test.tsv."""
    path = export_from_run_dir(
        run_dir, "saved_model", output_dir / "translator" / "1", decoding=decoding,
        overwrite=True,
    )
    lines = (run_dir / "test.tsv").read_text(encoding="utf-8").splitlines()
    return path, [line.split("\t")[0] for line in lines if line.strip()]


def mixed_requests(sentences: list[str], count: int, seed: int = 1234) -> list[bytes]:
    """`count` UTF-8 requests: about 80% single held-out sentences, 10% two
    to four sentences joined, 10% the hard inputs in turn."""
    rng = np.random.default_rng(seed)
    requests = []
    for index in range(count):
        kind = rng.random()
        if kind < 0.1:
            text = HARD_INPUTS[index % len(HARD_INPUTS)]
        elif kind < 0.2:
            text = " ".join(rng.choice(sentences, size=rng.integers(2, 5)))
        else:
            text = str(rng.choice(sentences))
        requests.append(text if isinstance(text, bytes) else text.encode("utf-8"))
    return requests


def serve_one(serving_default, text: bytes, deadline: float) -> Result:
    """One request (a batch of one string), timed; exceptions become errors."""
    if time.perf_counter() > deadline:
        return Result(error="timed out")
    start = time.perf_counter()
    try:
        outputs = serving_default(text=tf.constant([text], tf.string))
        translation = outputs["translations"].numpy()[0]
        score = float(outputs["scores"].numpy()[0])
    except Exception as error:  # noqa: BLE001: a server must count, not crash
        return Result(error=f"{type(error).__name__}: {error}")
    return Result(translation, score, (time.perf_counter() - start) * 1000)


def serve_sequentially(serving_default, requests: list[bytes], deadline: float) -> list[Result]:
    return [serve_one(serving_default, text, deadline) for text in requests]


def serve_concurrently(
    serving_default, requests: list[bytes], threads: int, deadline: float
) -> list[Result]:
    """The requests from `threads` threads; those unfinished at `deadline`
    are cancelled and count as timed out."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(serve_one, serving_default, text, deadline) for text in requests]
        concurrent.futures.wait(futures, timeout=max(deadline - time.perf_counter(), 0))
        for future in futures:
            future.cancel()
    return [
        future.result() if future.done() and not future.cancelled() else Result(error="timed out")
        for future in futures
    ]


def summary(name: str, results: list[Result], seconds: float) -> str:
    served = [result.milliseconds for result in results if result.error is None]
    timed_out = sum(result.error == "timed out" for result in results)
    errors = sum(result.error is not None for result in results) - timed_out
    p50, p90 = np.percentile(served, [50, 90]) if served else (float("nan"),) * 2
    return (f"{name:<16} {len(served):>6} {errors:>6} {timed_out:>9} {seconds:>8.1f} "
            f"{len(served) / seconds:>8.1f} {p50:>8.1f} {p90:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds for both runs together (after the export)")
    parser.add_argument("--decoding", choices=("greedy", "beam"), default="greedy")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--output-dir", type=Path)
    args = parser.parse_args()

    start = time.perf_counter()
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="serving-load-"))
    if args.run_dir:
        path, sentences = export_run_dir(args.run_dir, output_dir, args.decoding)
    else:
        path, sentences = train_small_model(args.train_steps, 200, output_dir, args.decoding)
    serving_default = tf.saved_model.load(path).signatures["serving_default"]
    requests = mixed_requests(sentences, args.requests)
    lengths = np.array([len(text) for text in requests])
    print(f"SavedModel {path} ready in {time.perf_counter() - start:.0f} s; "
          f"{len(requests)} requests of {lengths.min()}-{lengths.max()} bytes "
          f"(median {np.median(lengths):.0f}); TF {tf.__version__}, "
          f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    serve_one(serving_default, requests[0], float("inf"))  # warm-up: traces the graph
    deadline = time.perf_counter() + args.time_limit
    runs = {}
    for name, serve in (
        ("1 thread", lambda: serve_sequentially(serving_default, requests, deadline)),
        (f"{args.threads} threads", lambda: serve_concurrently(
            serving_default, requests, args.threads, deadline)),
    ):
        run_start = time.perf_counter()
        runs[name] = (serve(), time.perf_counter() - run_start)

    print(f"\n{'run':<16} {'served':>6} {'errors':>6} {'timed out':>9} {'seconds':>8} "
          f"{'req/s':>8} {'p50 ms':>8} {'p90 ms':>8}")
    for name, (results, seconds) in runs.items():
        print(summary(name, results, seconds))
    (reference, _), (concurrent_results, _) = runs.values()
    compared = [
        (expected, result) for expected, result in zip(reference, concurrent_results)
        if expected.error is None and result.error is None
    ]
    mismatches = sum(
        (expected.translation, expected.score) != (result.translation, result.score)
        for expected, result in compared
    )
    failures = sum(result.error is not None for results, _ in runs.values() for result in results)
    for results, _ in runs.values():
        for error in sorted({result.error for result in results if result.error})[:5]:
            print(f"error: {error}")
    print(f"\nmismatches against 1 thread: {mismatches} of {len(compared)} compared "
          f"(translation and score, exactly); errors and time-outs: {failures}; "
          f"load average at end: {os.getloadavg()[0]:.1f}")
    sys.exit(0 if mismatches == 0 and failures == 0 else 1)


if __name__ == "__main__":
    main()
