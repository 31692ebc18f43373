"""Decoding speed of this checkout against an earlier one, in one process.

    git worktree add /tmp/kt-old 2348df8
    python benchmarks/decode_regression.py --old-tree /tmp/kt-old [--repeats 7]

Machines of one kind differ, and one machine drifts during a day, so the two
versions are timed side by side: the earlier package is copied to a temporary
directory as `keras_transformer_old` (every "keras_transformer" in its sources
renamed, so that both register their Keras classes), both build the model of
benchmarks/decode.py, the earlier one receives this one's weights by variable
path, and their searches run interleaved (new, old, new, old, ...) after a
warm-up that compiles them. Checked first: both give the same tokens.
Reported per search and batch size: median new tokens per second of each
version and the ratio new / old. With `--tflite`, the exported float32 loops
(`export_tflite`, greedy) are timed too, each call in a process of its own,
the two versions' processes alternating.
"""

import argparse
import importlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from decode import (
    HIDDEN_DIM,
    INTERMEDIATE_DIM,
    MAX_SEQUENCE_LENGTH,
    NUM_HEADS,
    NUM_LAYERS,
    VOCABULARY_SIZE,
)

import keras_transformer as new
from keras_transformer.data import END_ID, START_ID


def import_old(tree: Path):
    """The `keras_transformer` package of `tree`, imported as `keras_transformer_old`."""
    target = Path(tempfile.mkdtemp()) / "keras_transformer_old"
    shutil.copytree(tree / "keras_transformer", target)
    for path in target.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"\bkeras_transformer\b", "keras_transformer_old", text))
    sys.path.insert(0, str(target.parent))
    return importlib.import_module("keras_transformer_old")


def build(package):
    return package.models.build_seq2seq_transformer(
        VOCABULARY_SIZE, VOCABULARY_SIZE, num_layers=NUM_LAYERS, hidden_dim=HIDDEN_DIM,
        num_heads=NUM_HEADS, intermediate_dim=INTERMEDIATE_DIM, dropout=0.0,
        max_sequence_length=MAX_SEQUENCE_LENGTH, position_encoding="learned",
    )


def tokens_of(result):
    """The tokens of a search's result: (tokens, scores) now, tokens alone before."""
    return np.asarray(result[0] if isinstance(result, tuple) else result)


def searches(package, model, new_tokens: int) -> dict:
    settings = {"start_token_id": START_ID, "end_token_id": END_ID, "max_length": new_tokens}
    decoding = importlib.import_module(f"{package.__name__}.decoding")
    return {
        "greedy (XLA)": lambda ids: tokens_of(decoding.greedy_search(model, ids, **settings)),
        "beam 4 (XLA)": lambda ids: tokens_of(decoding.beam_search(model, ids, **settings)),
    }


# Times one exported loop in a process of its own: interpreters in one process
# leave their thread pools spinning after an invoke, which slows whichever
# runs next and biased an in-process comparison by up to 20%.
TFLITE_TIMER = """
import statistics, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, source, runs = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[3])
translate = Interpreter(model_path=path, num_threads=int(sys.argv[4])).get_signature_runner(
    "translate")
translate(encoder_token_ids=source)
seconds = []
for _ in range(runs):
    start = time.perf_counter()
    translate(encoder_token_ids=source)
    seconds.append(time.perf_counter() - start)
np.save(sys.argv[5], translate(encoder_token_ids=source)["token_ids"])
print(statistics.median(seconds))
"""


def tflite_search(package, model, batch_size, source_length, new_tokens, directory):
    """A function of the source that runs the exported loop in a fresh process
    and returns `(tokens, median seconds per call)`."""
    export = importlib.import_module(f"{package.__name__}.export")
    path = export.export_tflite(
        model, os.path.join(directory, f"{package.__name__}_{batch_size}.tflite"),
        batch_size=batch_size, max_input_length=source_length, max_output_length=new_tokens,
    )

    def run(source, runs=5):
        source_path = os.path.join(directory, "source.npy")
        tokens_path = os.path.join(directory, "tokens.npy")
        np.save(source_path, source)
        seconds = subprocess.run(
            [sys.executable, "-c", TFLITE_TIMER, path, source_path, str(runs),
             str(os.cpu_count()), tokens_path],
            capture_output=True, text=True, check=True,
        ).stdout.split()[-1]
        return np.load(tokens_path), float(seconds)

    return run


def time_pair(run_new, run_old, source, repeats: int) -> tuple[float, float]:
    """Median seconds of each, timed alternately after one warm-up call each,
    the first of each pair changing every repeat."""
    run_new(source), run_old(source)
    times = {"new": [], "old": []}
    for repeat in range(repeats):
        order = (("new", run_new), ("old", run_old))
        for name, run in order if repeat % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            run(source)
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["new"]), statistics.median(times["old"])


def report(name, batch_size, new_tokens, new_seconds, old_seconds, same) -> None:
    tokens = batch_size * new_tokens
    print(f"{name:<24} {batch_size:>5} {tokens / new_seconds:>10,.0f} "
          f"{tokens / old_seconds:>10,.0f} {old_seconds / new_seconds:>8.2f}"
          + ("" if same else "  TOKENS DIFFER"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-tree", type=Path, required=True,
                        help="a checkout of the earlier commit (git worktree add DIR REV)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--source-length", type=int, default=24)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--tflite", action="store_true", help="also time the exported loops")
    args = parser.parse_args()

    old = import_old(args.old_tree)
    new_model, old_model = build(new), build(old)
    # A zero row gives the end token a tied logit of exactly 0: never the
    # argmax, so every search runs all `--new-tokens` steps.
    table = new_model.decoder_embedding.embeddings
    table.assign(np.where(np.arange(VOCABULARY_SIZE)[:, None] == END_ID, 0.0, table.numpy()))
    new_weights = {weight.path: weight for weight in new_model.weights}
    for weight in old_model.weights:
        weight.assign(new_weights[weight.path].numpy())

    print(f"old tree {args.old_tree}; load average at start {os.getloadavg()}; "
          f"{args.new_tokens} new tokens, source {args.source_length}, median of {args.repeats}")
    print(f"{'search':<22} {'batch':>5} {'new tok/s':>10} {'old tok/s':>10} {'new/old':>8}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as directory:
        for batch_size in (int(size) for size in args.batch_sizes.split(",")):
            source = rng.integers(4, VOCABULARY_SIZE, (batch_size, args.source_length))
            source = source.astype("int32")
            new_runs = searches(new, new_model, args.new_tokens)
            old_runs = searches(old, old_model, args.new_tokens)
            pairs = {name: (new_runs[name], old_runs[name]) for name in new_runs}
            for name, (run_new, run_old) in pairs.items():
                same = np.array_equal(run_new(source), run_old(source))
                new_seconds, old_seconds = time_pair(run_new, run_old, source, args.repeats)
                report(name, batch_size, args.new_tokens, new_seconds, old_seconds, same)
            if args.tflite:
                runs = [
                    tflite_search(package, model, batch_size, args.source_length,
                                  args.new_tokens, directory)
                    for package, model in ((new, new_model), (old, old_model))
                ]
                times, tokens = ([], []), [None, None]
                for _ in range(args.repeats):  # alternating processes
                    for index, run in enumerate(runs):
                        tokens[index], seconds = run(source)
                        times[index].append(seconds)
                same = np.array_equal(*tokens)
                report("greedy (TFLite float32)", batch_size, args.new_tokens,
                       statistics.median(times[0]), statistics.median(times[1]), same)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
