"""Session fixtures of the tiny Marian checkpoint: the imported translator,
its run directory, and the reference outputs (see marian_reference.py)."""

import pytest
from marian_reference import CHECKPOINT, Reference

from keras_transformer.convert import from_marian, import_marian


@pytest.fixture(scope="session")
def reference():
    return Reference()


@pytest.fixture(scope="session")
def marian_translator():
    return from_marian(CHECKPOINT)


@pytest.fixture(scope="session")
def marian_run_dir(tmp_path_factory):
    return import_marian(CHECKPOINT, tmp_path_factory.mktemp("marian") / "run")
