import sys

import pytest

from keras_transformer.optional import MissingExtraError, import_optional


def test_returns_the_module():
    assert import_optional("json", "plot", "the test") is sys.modules["json"]


def test_a_missing_module_names_the_extra(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(MissingExtraError) as error:
        import_optional("matplotlib.figure", "plot", "the attention plot")
    assert str(error.value) == (
        "the attention plot needs matplotlib, which is not installed; install it with "
        "pip install 'keras-transformer-seq2seq[plot]'"
    )
    assert isinstance(error.value, ImportError)
