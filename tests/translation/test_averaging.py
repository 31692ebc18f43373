import keras
import numpy as np
import pytest

import keras_transformer as kt
from keras_transformer.translation import average_models

SIZES = {"num_layers": 1, "hidden_dim": 8, "num_heads": 2, "intermediate_dim": 16,
         "max_sequence_length": 8}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    directory = tmp_path_factory.mktemp("checkpoints")
    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = kt.build_seq2seq_transformer(12, 12, **SIZES)
        paths.append(directory / f"epoch_00{seed}.keras")
        model.save(paths[-1])
    return paths


def weights(model):
    return [keras.ops.convert_to_numpy(weight) for weight in model.weights]


def test_averaging_identical_checkpoints_gives_the_checkpoint(checkpoints):
    averaged = average_models([checkpoints[0]] * 3)
    expected = keras.saving.load_model(checkpoints[0])
    for value, reference in zip(weights(averaged), weights(expected), strict=True):
        np.testing.assert_array_equal(value, reference)


def test_averaging_two_checkpoints_gives_the_elementwise_mean(checkpoints):
    first, second = [weights(keras.saving.load_model(path)) for path in checkpoints]
    averaged = weights(average_models(checkpoints))
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))
    for value, a, b in zip(averaged, first, second, strict=True):
        np.testing.assert_allclose(value, (a + b) / 2, rtol=1e-6, atol=1e-7)


def test_checkpoints_of_other_shapes_do_not_average(checkpoints, tmp_path):
    other = tmp_path / "other.keras"
    kt.build_seq2seq_transformer(12, 12, **{**SIZES, "intermediate_dim": 32}).save(other)
    with pytest.raises(ValueError, match=r"other\.keras has weights of other shapes"):
        average_models([checkpoints[0], other])
