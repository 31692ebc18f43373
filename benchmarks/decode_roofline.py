"""What bounds a decoding step on this machine: microbenchmarks behind the
"Decoding speed" section of docs/performance.md.

1. Matrix-vector products (batch 1) inside one XLA-compiled loop, cycling
   over matrices of 256 x 8000 float32 (8.2 MB each): GB/s of weights read
   as the working set grows past the L3 cache. A decoding step of the small
   config reads 18.7 MB of weights.
2. The tied output projection (8000 x 256) with float32, bfloat16 and
   float16 weights.
3. Greedy's argmax over (B, 8000) logits: `tf.argmax` against the maximum
   followed by the first position holding it (`search_utils.argmax`).

Run pinned to one core for stable figures:

    taskset -c 0 python benchmarks/decode_roofline.py
"""

import time

import numpy as np
import tensorflow as tf

from keras_transformer.decoding.search_utils import argmax

ITERATIONS = 200
ROUNDS = 5


def seconds_per_iteration(body, x):
    """Best of ROUNDS runs of a compiled `while_loop` of ITERATIONS calls of
    `body(x) -> scalar`; the scalar feeds back into x so XLA keeps every call."""

    @tf.function(jit_compile=True)
    def run(x):
        def step(i, x):
            return i + 1, x + body(x) * 1e-9

        return tf.while_loop(lambda i, x: i < ITERATIONS, step, (0, x))[1]

    run(x).numpy()  # compile
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run(x).numpy()
        times.append(time.perf_counter() - start)
    return min(times) / ITERATIONS


def matvec_bandwidth(num_matrices, dtype=tf.float32, shape=(256, 8000)):
    rng = np.random.default_rng(0)
    matrices = [
        tf.constant(rng.normal(0, 0.01, shape).astype("float32"), dtype=dtype)
        for _ in range(num_matrices)
    ]

    def body(x):  # x: (1, 256)
        total = 0.0
        for matrix in matrices:
            y = tf.matmul(tf.cast(x, dtype), matrix)  # (1, 8000)
            total += tf.reduce_sum(tf.cast(y, tf.float32))
        return total

    seconds = seconds_per_iteration(body, tf.random.normal((1, shape[0])))
    megabytes = num_matrices * np.prod(shape) * matrices[0].dtype.size / 1e6
    return seconds, megabytes


def argmax_seconds(batch_size, choose):
    return seconds_per_iteration(
        lambda logits: tf.cast(tf.reduce_sum(choose(logits)), tf.float32),
        tf.random.normal((batch_size, 8000)),
    )


def main() -> None:
    print("1. float32 matrix-vector products, 256 x 8000 matrices, batch 1")
    print(f"{'matrices':>9}{'working set':>14}{'us / iteration':>17}{'GB/s':>8}")
    for count in (1, 2, 3, 6):
        seconds, megabytes = matvec_bandwidth(count)
        print(f"{count:>9}{megabytes:>11.1f} MB{seconds * 1e6:>17.1f}{megabytes / 1e3 / seconds:>8.1f}")

    print("\n2. the 8000 x 256 output projection, batch 1, by weight dtype")
    for dtype in (tf.float32, tf.bfloat16, tf.float16):
        seconds, megabytes = matvec_bandwidth(1, dtype)
        print(f"{dtype.name:>9}{megabytes:>11.1f} MB{seconds * 1e6:>17.1f} us")

    print("\n3. argmax over (B, 8000) logits, us per call (including the loop's own add)")
    for batch_size in (1, 32, 128):
        plain = argmax_seconds(batch_size, lambda x: tf.argmax(x, axis=-1, output_type=tf.int32))
        ours = argmax_seconds(batch_size, argmax)
        print(f"B = {batch_size:>3}: tf.argmax {plain * 1e6:8.1f}   max + first index {ours * 1e6:8.1f}")


if __name__ == "__main__":
    main()
