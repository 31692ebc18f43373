"""Data-parallel training under `tf.distribute.MirroredStrategy` and JAX's
`keras.distribution.DataParallel`.

TensorFlow and XLA fix their devices when they start, so the two CPU devices
are made in a subprocess (logical devices for TensorFlow,
`--xla_force_host_platform_device_count=2` for JAX).
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPOSITORY = str(Path(__file__).resolve().parents[2])

SCRIPT = textwrap.dedent(
    """
    import json

    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

    import keras
    import numpy as np

    from keras_transformer import build_seq2seq_transformer
    from keras_transformer.training import (
        MaskedSparseCategoricalCrossentropy,
        transformer_adam,
    )

    # The first half of the global batch (replica 0) holds 8 label tokens, the
    # second 4: the mean of the two replicas' token means (Keras's reduction)
    # is not the global token mean, which the loss takes across replicas.
    source = np.array(
        [[3, 4, 5, 0], [6, 7, 0, 0], [8, 9, 10, 11], [12, 0, 0, 0]], "int32"
    )
    labels = np.array(
        [[5, 4, 3, 2], [7, 6, 5, 2], [11, 2, 0, 0], [12, 2, 0, 0]], "int32"
    )
    decoder_inputs = np.where(
        labels != 0, np.pad(labels, ((0, 0), (1, 0)), constant_values=1)[:, :-1], 0
    )
    data = {"encoder_token_ids": source, "decoder_token_ids": decoder_inputs}

    def train(strategy):
        keras.utils.set_random_seed(5)
        with strategy.scope():
            model = build_seq2seq_transformer(
                16, 16, num_layers=1, hidden_dim=16, num_heads=2,
                intermediate_dim=32, dropout=0.0, max_sequence_length=8,
            )
            model.compile(
                optimizer=transformer_adam(16, warmup_steps=4),
                loss=MaskedSparseCategoricalCrossentropy(),
            )
        history = model.fit(data, labels, batch_size=4, epochs=3, shuffle=False, verbose=0)
        return history.history["loss"], model.predict(data, verbose=0)[labels != 0]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one_losses, one_logits = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two_losses, two_logits = train(mirrored)
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "one_device": one_losses,
        "mirrored": two_losses,
        "logits_difference": float(np.abs(one_logits - two_logits).max()),
    }))
    """
)


def test_mirrored_strategy_on_two_cpus_matches_one_device():
    environment = {
        **os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": REPOSITORY,
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["one_device"][0] == pytest.approx(report["mirrored"][0], rel=1e-5)
    assert report["one_device"] == pytest.approx(report["mirrored"], rel=1e-4)
    # Compared through the logits of real tokens after 3 updates: Adam moves
    # parameters whose exact gradient is zero (key biases) by +-lr on rounding
    # noise, differently on each run, without changing any logit.
    assert report["logits_difference"] < 1e-3


JAX_SCRIPT = textwrap.dedent(
    """
    import json

    import keras
    import numpy as np

    from keras_transformer import build_seq2seq_transformer
    from keras_transformer.training import (
        MaskedSparseCategoricalCrossentropy,
        transformer_adam,
    )

    # As above: the two halves of the global batch hold 8 and 4 label tokens.
    source = np.array(
        [[3, 4, 5, 0], [6, 7, 0, 0], [8, 9, 10, 11], [12, 0, 0, 0]], "int32"
    )
    labels = np.array(
        [[5, 4, 3, 2], [7, 6, 5, 2], [11, 2, 0, 0], [12, 2, 0, 0]], "int32"
    )
    decoder_inputs = np.where(
        labels != 0, np.pad(labels, ((0, 0), (1, 0)), constant_values=1)[:, :-1], 0
    )
    data = {"encoder_token_ids": source, "decoder_token_ids": decoder_inputs}

    def train():
        keras.utils.set_random_seed(5)
        model = build_seq2seq_transformer(
            16, 16, num_layers=1, hidden_dim=16, num_heads=2,
            intermediate_dim=32, dropout=0.0, max_sequence_length=8,
        )
        model.compile(
            optimizer=transformer_adam(16, warmup_steps=4),
            loss=MaskedSparseCategoricalCrossentropy(),
        )
        model.fit(data, labels, batch_size=4, epochs=3, shuffle=False, verbose=0)
        return model.predict(data, verbose=0)[labels != 0]

    one_device = train()
    devices = keras.distribution.list_devices("cpu")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    data_parallel = train()
    print(json.dumps({
        "devices": len(devices),
        "logits_difference": float(np.abs(one_device - data_parallel).max()),
    }))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_data_parallel_on_two_cpus_matches_one_device():
    """The loss sees the global batch under JAX (its mean needs no all-reduce)."""
    environment = {
        **os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": REPOSITORY,
    }
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True, env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2
    assert report["logits_difference"] < 1e-5
