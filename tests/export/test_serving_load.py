"""The exported SavedModel under concurrent load: `serving_default` called
from 8 threads gives every request exactly what it gives from one thread.

`benchmarks/serving_load.py` is the full-size version (1,000 requests,
throughput and latency)."""

import concurrent.futures

import numpy as np
import pytest
import tensorflow as tf

from keras_transformer.export import export_saved_model

NUM_REQUESTS = 100
NUM_THREADS = 8
TIME_LIMIT_SECONDS = 120
HARD_INPUTS = [
    "",
    " \t\n  ",
    "Je mange une pomme rouge. " * 200,
    "Привет, как дела?",
    "我是学生。",
    "🙂 ### ??? ...",
    b"caf\xe9 au lait",
]


@pytest.fixture(scope="module")
def serving_default(translator, tmp_path_factory):
    path = export_saved_model(
        translator.model,
        translator.source_vocabulary,
        translator.target_vocabulary,
        tmp_path_factory.mktemp("serving_load") / "translator" / "1",
        max_input_length=16,
        max_output_length=24,
    )
    return tf.saved_model.load(path).signatures["serving_default"]


@pytest.fixture(scope="module")
def requests(translator) -> list[bytes]:
    """Held-out sentences, pairs of them joined, and hard inputs, mixed."""
    sources = [source for source, _ in translator.test_pairs]
    rng = np.random.default_rng(0)
    texts = list(rng.choice(sources, NUM_REQUESTS - 20 - len(HARD_INPUTS)))
    texts += [" ".join(rng.choice(sources, 2)) for _ in range(20)] + HARD_INPUTS
    texts = [text if isinstance(text, bytes) else str(text).encode("utf-8") for text in texts]
    return [texts[index] for index in rng.permutation(len(texts))]


def _serve(serving_default, text: bytes) -> tuple[bytes, float]:
    outputs = serving_default(text=tf.constant([text], tf.string))
    return outputs["translations"].numpy()[0], float(outputs["scores"].numpy()[0])


def test_eight_threads_give_the_single_threaded_outputs(serving_default, requests):
    expected = [_serve(serving_default, text) for text in requests]
    with concurrent.futures.ThreadPoolExecutor(max_workers=NUM_THREADS) as pool:
        futures = [pool.submit(_serve, serving_default, text) for text in requests]
        done, not_done = concurrent.futures.wait(futures, timeout=TIME_LIMIT_SECONDS)
        for future in not_done:
            future.cancel()
    assert not not_done, f"{len(not_done)} requests unfinished after {TIME_LIMIT_SECONDS} s"
    errors = [future.exception() for future in futures if future.exception() is not None]
    assert not errors, errors[:3]
    results = [future.result() for future in futures]
    mismatches = [
        (text, want, got) for text, want, got in zip(requests, expected, results) if want != got
    ]
    assert not mismatches, mismatches[:3]
    assert expected[requests.index(b"")] == (b"", 0.0)
