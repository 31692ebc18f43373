"""Serving under load: the exported SavedModel called from many threads.

The `serving_default` signature (strings in, translations out) serves
`--requests` requests of mixed lengths, each a batch of `--batch-size`
strings: held-out sentences of the generated French -> English corpus, two to
four of them joined, and the hard inputs a server meets (empty, whitespace
only, very long, other scripts, emoji, invalid UTF-8). The same model is
exported twice, with the decoding loop compiled by XLA (the default) and as
a plain graph (`jit_compile=False`); each SavedModel first serves every
request once untimed (XLA compiles once per batch size and padded source
length), then once from one thread, for the reference outputs, then from
`--threads` threads (`concurrent.futures.ThreadPoolExecutor`). The timed runs
of one SavedModel share one time bound, `--time-limit` seconds: requests not
done by then count as timed out. Decoding is greedy unless `--decoding beam`.
Reported per run: errors, throughput (requests per second, wall clock) and
p50 / p90 latency per request; for the threaded run also the requests whose
translations or scores differ from the single-threaded run, and the
requests where the two SavedModels' translations differ. The exit status is
1 unless there are no errors, no time-outs and no mismatches.

Without `--run-dir` a small model (2 + 2 layers, D = 128) is trained here
briefly; with `--run-dir` the model, vocabularies and test.tsv of a
`keras-transformer train` run are exported and used.

    python benchmarks/serving_load.py [--run-dir RUN_DIR] [--requests 1000]
        [--batch-size 1] [--threads 8] [--time-limit 600]
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
# The two exports compared: the decoding loop compiled by XLA, and a plain graph.
VARIANTS = ("XLA", "plain graph")
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

    translation: tuple | None = None
    score: tuple | None = None
    milliseconds: float | None = None
    error: str | None = None


def train_small_model(
    steps: int, num_test: int, output_dir: Path, decoding: str
) -> tuple[dict, list[str]]:
    """Trains a 2 + 2 layer model briefly, exports it to `output_dir` with and
    without XLA; returns the SavedModel paths and `num_test` held-out source
    sentences."""
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
    paths = {
        name: export_saved_model(
            model, source_vocabulary, target_vocabulary, output_dir / name / "1",
            decoding=decoding, jit_compile=name == "XLA", overwrite=True,
        )
        for name in VARIANTS
    }
    return paths, [source for source, _ in test]


def export_run_dir(run_dir: Path, output_dir: Path, decoding: str) -> tuple[dict, list[str]]:
    """Exports the SavedModels of a run directory; returns their paths and the
    source sentences of RUN_DIR/test.tsv."""
    paths = {
        name: export_from_run_dir(
            run_dir, "saved_model", output_dir / name / "1", decoding=decoding,
            jit_compile=name == "XLA", overwrite=True,
        )
        for name in VARIANTS
    }
    lines = (run_dir / "test.tsv").read_text(encoding="utf-8").splitlines()
    return paths, [line.split("\t")[0] for line in lines if line.strip()]


def mixed_requests(
    sentences: list[str], count: int, batch_size: int, seed: int = 1234
) -> list[list[bytes]]:
    """`count` requests of `batch_size` UTF-8 texts: about 80% single
    held-out sentences, 10% two to four sentences joined, 10% the hard
    inputs in turn."""
    rng = np.random.default_rng(seed)
    texts = []
    for index in range(count * batch_size):
        kind = rng.random()
        if kind < 0.1:
            text = HARD_INPUTS[index % len(HARD_INPUTS)]
        elif kind < 0.2:
            text = " ".join(rng.choice(sentences, size=rng.integers(2, 5)))
        else:
            text = str(rng.choice(sentences))
        texts.append(text if isinstance(text, bytes) else text.encode("utf-8"))
    return [texts[start : start + batch_size] for start in range(0, len(texts), batch_size)]


def serve_one(serving_default, texts: list[bytes], deadline: float) -> Result:
    """One request (a batch of strings), timed; exceptions become errors."""
    if time.perf_counter() > deadline:
        return Result(error="timed out")
    start = time.perf_counter()
    try:
        outputs = serving_default(text=tf.constant(texts, tf.string))
        translation = tuple(outputs["translations"].numpy())
        score = tuple(outputs["scores"].numpy().tolist())
    except Exception as error:  # noqa: BLE001: a server must count, not crash
        return Result(error=f"{type(error).__name__}: {error}")
    return Result(translation, score, (time.perf_counter() - start) * 1000)


def serve_sequentially(serving_default, requests: list, deadline: float) -> list[Result]:
    return [serve_one(serving_default, text, deadline) for text in requests]


def serve_concurrently(
    serving_default, requests: list, threads: int, deadline: float
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
    return (f"{name:<24} {len(served):>6} {errors:>6} {timed_out:>9} {seconds:>8.1f} "
            f"{len(served) / seconds:>8.1f} {p50:>8.1f} {p90:>8.1f}")


def serve(path: str, requests: list, threads: int, time_limit: float) -> dict:
    """Serves every request once untimed, then from one thread and from
    `threads` threads; returns {run name: (results, seconds)}."""
    serving_default = tf.saved_model.load(path).signatures["serving_default"]
    warm_up = serve_sequentially(serving_default, requests, float("inf"))
    warm_up_errors = sorted({result.error for result in warm_up if result.error})
    print(f"{path}: warm-up pass done" + (f", errors {warm_up_errors[:3]}" if warm_up_errors
                                          else ""))
    deadline = time.perf_counter() + time_limit
    runs = {}
    for name, run in (
        ("1 thread", lambda: serve_sequentially(serving_default, requests, deadline)),
        (f"{threads} threads", lambda: serve_concurrently(
            serving_default, requests, threads, deadline)),
    ):
        run_start = time.perf_counter()
        runs[name] = (run(), time.perf_counter() - run_start)
    return runs


def mismatches(reference: list[Result], results: list[Result]) -> tuple[int, int]:
    """(requests whose translations or scores differ, requests compared)."""
    compared = [
        (expected, result) for expected, result in zip(reference, results)
        if expected.error is None and result.error is None
    ]
    differ = sum(
        (expected.translation, expected.score) != (result.translation, result.score)
        for expected, result in compared
    )
    return differ, len(compared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=1, help="strings per request")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds for the timed runs of each SavedModel")
    parser.add_argument("--decoding", choices=("greedy", "beam"), default="greedy")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--output-dir", type=Path)
    args = parser.parse_args()

    start = time.perf_counter()
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="serving-load-"))
    if args.run_dir:
        paths, sentences = export_run_dir(args.run_dir, output_dir, args.decoding)
    else:
        paths, sentences = train_small_model(args.train_steps, 200, output_dir, args.decoding)
    requests = mixed_requests(sentences, args.requests, args.batch_size)
    lengths = np.array([len(text) for request in requests for text in request])
    print(f"SavedModels ready in {time.perf_counter() - start:.0f} s; {len(requests)} "
          f"requests of {args.batch_size} texts of {lengths.min()}-{lengths.max()} bytes "
          f"(median {np.median(lengths):.0f}); TF {tf.__version__}, "
          f"{len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    runs = {
        (variant, name): run
        for variant, path in paths.items()
        for name, run in serve(path, requests, args.threads, args.time_limit).items()
    }
    print(f"\n{'run':<24} {'served':>6} {'errors':>6} {'timed out':>9} {'seconds':>8} "
          f"{'req/s':>8} {'p50 ms':>8} {'p90 ms':>8}")
    for (variant, name), (results, seconds) in runs.items():
        print(summary(f"{variant}, {name}", results, seconds))
    failures = sum(result.error is not None for results, _ in runs.values() for result in results)
    for results, _ in runs.values():
        for error in sorted({result.error for result in results if result.error})[:5]:
            print(f"error: {error}")
    differ = 0
    for variant in VARIANTS:
        (reference, _), (threaded, _) = (runs[key] for key in runs if key[0] == variant)
        count, compared = mismatches(reference, threaded)
        differ += count
        print(f"{variant}: {count} of {compared} threaded requests differ from 1 thread")
    translations = [
        [result.translation for result in runs[key][0]] for key in runs if key[1] == "1 thread"
    ]
    same = sum(a == b for a, b in zip(*translations) if a is not None and b is not None)
    print(f"XLA and plain graph give the same translations for {same} of "
          f"{len(requests)} requests (scores may differ in the last bits); errors and "
          f"time-outs: {failures}; load average at end: {os.getloadavg()[0]:.1f}")
    sys.exit(0 if differ == 0 and failures == 0 else 1)


if __name__ == "__main__":
    main()
