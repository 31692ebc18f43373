"""The layers, the model, training and cached decoding under each Keras backend.

Keras fixes its backend when it is first imported, so each backend runs in a
subprocess with KERAS_BACKEND set. A backend whose package (jax, torch) is
not installed in this interpreter is skipped. The XLA-compiled searches
(`greedy_search`, `beam_search`, `sample`) are TensorFlow graphs: under the
other backends they refuse with a clear error, and the step-by-step
`CachedSeq2SeqDecoder` is what remains, run here as an eager loop.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json

    import keras
    import numpy as np

    from keras_transformer import build_seq2seq_transformer, layers
    from keras_transformer.decoding import CachedSeq2SeqDecoder, greedy_search
    from keras_transformer.training import (
        MaskedAccuracy,
        MaskedSparseCategoricalCrossentropy,
        transformer_adam,
    )

    keras.utils.set_random_seed(1)
    report = {"backend": keras.backend.backend()}
    source = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], "int32")
    labels = np.array([[6, 5, 2, 0], [9, 8, 7, 2]], "int32")
    decoder_inputs = np.array([[1, 6, 5, 0], [1, 9, 8, 7]], "int32")
    data = {"encoder_token_ids": source, "decoder_token_ids": decoder_inputs}

    embedded = layers.TokenAndPositionEmbedding(30, 8, 8)(source)
    encoded = layers.TransformerEncoder(1, num_heads=2, intermediate_dim=16)(embedded)
    report["encoder_shape"] = list(encoded.shape)

    model = build_seq2seq_transformer(
        30, 30, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16,
        dropout=0.0, max_sequence_length=8,
    )
    model.compile(
        optimizer=transformer_adam(8, warmup_steps=10),
        loss=MaskedSparseCategoricalCrossentropy(),
        metrics=[MaskedAccuracy()],
    )
    history = model.fit(data, labels, batch_size=2, epochs=5, verbose=0)
    report["losses"] = history.history["loss"]

    path = "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    logits = keras.ops.convert_to_numpy(model(data))
    report["reload_difference"] = float(
        np.abs(keras.ops.convert_to_numpy(reloaded(data)) - logits).max()
    )

    decoder = CachedSeq2SeqDecoder(model)
    cross_caches, source_mask = decoder.encode(source)
    caches = decoder.init_self_attention_caches(2, 4)
    step_logits = []
    for index in range(4):
        tokens = keras.ops.convert_to_tensor(decoder_inputs[:, index])
        step, caches = decoder.step(tokens, index, caches, cross_caches, source_mask)
        step_logits.append(keras.ops.convert_to_numpy(step))
    real = decoder_inputs != 0
    report["cached_difference"] = float(
        np.abs(np.stack(step_logits, axis=1) - logits)[real].max()
    )

    try:
        greedy_search(model, source, start_token_id=1, end_token_id=2, max_length=4)
        report["greedy_search"] = "ran"
    except ValueError as error:
        report["greedy_search"] = str(error)
    print(json.dumps(report))
    """
)


def _backend_installed(backend):
    if backend == "tensorflow":
        return True
    check = subprocess.run([sys.executable, "-c", f"import {backend}"], capture_output=True)
    return check.returncode == 0


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_layers_model_training_and_cached_decoding(backend, tmp_path):
    if not _backend_installed(backend):
        pytest.skip(f"{backend} is not installed in {sys.executable}")
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environment,
        cwd=tmp_path, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == backend
    assert report["encoder_shape"] == [2, 4, 8]
    losses = report["losses"]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0]
    assert report["reload_difference"] < 1e-6
    assert report["cached_difference"] < 1e-4
    if backend == "tensorflow":
        assert report["greedy_search"] == "ran"
    else:
        assert "needs the TensorFlow backend" in report["greedy_search"]
