"""The layers, the model, training and decoding under each Keras backend.

Keras fixes its backend when it is first imported, so each backend runs in a
subprocess with KERAS_BACKEND set. A backend whose package (jax, torch) is
not installed in this interpreter is skipped. The model's step-by-step
`decode_step` runs as an eager loop; the searches (`greedy_search`,
`beam_search`, `sample`) run compiled under TensorFlow and JAX and eagerly
under torch. A model whose weights are set from numpy decodes to the same
greedy tokens and scores under every backend as under TensorFlow.
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import json

    import keras
    import numpy as np

    from keras_transformer import build_seq2seq_transformer, layers
    from keras_transformer.decoding import beam_search, greedy_search, sample
    from keras_transformer.training import (
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
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
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

    encoder_outputs, source_mask = model.encode(source)
    cross_cache = model.compute_cross_attention_cache(encoder_outputs)
    cache = model.init_self_attention_cache(2, 4)
    step_logits = []
    for index in range(4):
        tokens = keras.ops.convert_to_tensor(decoder_inputs[:, index : index + 1])  # (B, 1)
        step, cache = model.decode_step(tokens, index, cache, cross_cache, source_mask)
        step_logits.append(keras.ops.convert_to_numpy(step[:, 0]))  # (B, V)
    real = decoder_inputs != 0
    report["cached_difference"] = float(
        np.abs(np.stack(step_logits, axis=1) - logits)[real].max()
    )

    # The same weights under every backend, from numpy: kernels and tables
    # with std 2 / sqrt(fan_in) (large enough for tokens that depend on the
    # source; one row ends at once), the rest near the defaults.
    decoding_model = build_seq2seq_transformer(
        30, 30, num_layers=2, hidden_dim=16, num_heads=2, intermediate_dim=32,
        dropout=0.0, max_sequence_length=12,
    )
    weights = np.random.default_rng(0)
    for weight in decoding_model.weights:
        std = 2.0 / np.sqrt(weight.shape[0]) if len(weight.shape) > 1 else 0.1
        offset = 1.0 if weight.path.endswith("gamma") else 0.0
        weight.assign(weights.normal(offset, std, weight.shape).astype("float32"))
    source = np.array(
        [[5, 6, 7, 8, 2, 0], [9, 10, 2, 0, 0, 0], [11, 12, 13, 14, 15, 2]], "int32"
    )
    settings = {"start_token_id": 1, "end_token_id": 2, "max_length": 10}

    def as_list(tensor):
        return keras.ops.convert_to_numpy(tensor).tolist()

    greedy, greedy_scores = greedy_search(decoding_model, source, **settings)
    report["greedy"] = as_list(greedy)
    report["greedy_scores"] = as_list(greedy_scores)
    generated, generated_scores = decoding_model.generate(source, **settings)
    report["generate"] = as_list(generated)
    report["generate_scores"] = as_list(generated_scores)
    beam_1, beam_1_scores = beam_search(
        decoding_model, source, beam_size=1, length_penalty=0.0, **settings
    )
    report["beam_1"] = as_list(beam_1)
    report["beam_1_scores"] = as_list(beam_1_scores)
    beams, scores = beam_search(
        decoding_model, source, beam_size=4, return_all_beams=True, **settings
    )
    report["beam_4_shape"] = list(beams.shape)
    report["beam_4_scores_shape"] = list(scores.shape)
    samples, sample_scores = sample(decoding_model, source, temperature=2.0, seed=3, **settings)
    report["sample"] = as_list(samples)
    report["sample_scores_shape"] = list(sample_scores.shape)
    samples_again, _ = sample(decoding_model, source, temperature=2.0, seed=3, **settings)
    report["sample_again"] = as_list(samples_again)
    top_1, top_1_scores = sample(decoding_model, source, top_k=1, seed=4, **settings)
    report["sample_top_1"] = as_list(top_1)
    report["sample_top_1_scores"] = as_list(top_1_scores)
    print(json.dumps(report))
    """
)


def _backend_installed(backend):
    if backend == "tensorflow":
        return True
    check = subprocess.run([sys.executable, "-c", f"import {backend}"], capture_output=True)
    return check.returncode == 0


@functools.cache
def _report(backend):
    """The report of SCRIPT run under `backend`, once per backend."""
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as directory:
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environment,
            cwd=directory, timeout=900,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_layers_model_training_and_decoding(backend):
    if not _backend_installed(backend):
        pytest.skip(f"{backend} is not installed in {sys.executable}")
    report = _report(backend)
    assert report["backend"] == backend
    assert report["encoder_shape"] == [2, 4, 8]
    losses = report["losses"]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0]
    assert report["reload_difference"] < 1e-6
    assert report["cached_difference"] < 1e-4

    greedy = report["greedy"]
    assert len(greedy) == 3 and 1 <= len(greedy[0]) <= 10
    assert report["greedy"] == _report("tensorflow")["greedy"]
    greedy_scores = np.array(report["greedy_scores"])
    assert greedy_scores.shape == (3,) and np.all(greedy_scores <= 0)
    np.testing.assert_allclose(greedy_scores, _report("tensorflow")["greedy_scores"], atol=1e-4)
    assert report["generate"] == greedy
    np.testing.assert_allclose(report["generate_scores"], greedy_scores, atol=1e-6)
    assert report["beam_1"] == greedy
    # With length_penalty=0 a beam's score is its total log-probability.
    np.testing.assert_allclose(report["beam_1_scores"], greedy_scores, atol=1e-4)
    assert report["beam_4_shape"][:2] == [3, 4] and report["beam_4_shape"][2] <= 10
    assert report["beam_4_scores_shape"] == [3, 4]
    samples = report["sample"]
    assert len(samples) == 3 and len(samples[0]) <= 10
    assert all(0 <= token < 30 for row in samples for token in row)
    assert report["sample_scores_shape"] == [3]
    assert report["sample_again"] == samples
    assert report["sample_top_1"] == greedy
    np.testing.assert_allclose(report["sample_top_1_scores"], greedy_scores, atol=1e-4)
