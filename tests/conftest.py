"""Shared fixtures: a quiet backend (TensorFlow unless KERAS_BACKEND says
otherwise), fixed seeds, dtype policies.

Tests marked `tensorflow_only` use TensorFlow directly (`tf.function`,
`tf.GradientTape`) and are skipped under the other backends; `make test`
runs tests/layers under JAX as well."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"uses TensorFlow directly; backend is {keras.backend.backend()}")
    for item in items:
        if "tensorflow_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def seed():
    """Seeds Python, NumPy and the backend before every test."""
    keras.utils.set_random_seed(1234)


@pytest.fixture
def rng():
    """A NumPy generator with a fixed seed, for test inputs."""
    return np.random.default_rng(1234)


@pytest.fixture
def dtype_policy(request):
    """Sets the global dtype policy to `request.param` (use `indirect=True`)
    and restores the previous policy afterwards, even if the test fails."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.fixture
def save_and_load(tmp_path):
    """Saves a model to a `.keras` file and loads it back."""

    def round_trip(model):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        return keras.saving.load_model(path)

    return round_trip
