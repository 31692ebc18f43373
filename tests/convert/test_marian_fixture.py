"""make_marian_fixture.py, run again, writes the committed fixture.

It needs torch and transformers, which the project does not depend on: the
test runs the script with this Python when it has them, else with the Python
named by KT_REFERENCE_PYTHON (a separate environment, see the script's
docstring), else it is skipped:

    KT_REFERENCE_PYTHON=/work/venv-ref/bin/python pytest tests/convert -m reference
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from marian_reference import CHECKPOINT, FIXTURES, Reference

from keras_transformer.convert import from_marian

SCRIPT = Path(__file__).resolve().parent / "make_marian_fixture.py"


def reference_python() -> str:
    if all(importlib.util.find_spec(name) for name in ("torch", "transformers")):
        return sys.executable
    python = os.environ.get("KT_REFERENCE_PYTHON")
    if not python:
        pytest.skip("needs torch and transformers, or KT_REFERENCE_PYTHON naming a Python "
                    "that has them")
    return python


@pytest.mark.reference
def test_regenerated_fixture_equals_the_committed_one(tmp_path):
    subprocess.run([reference_python(), str(SCRIPT), str(tmp_path)], check=True,
                   capture_output=True)
    fresh, committed = Reference(tmp_path), Reference(FIXTURES)
    assert fresh.values == committed.values
    np.testing.assert_allclose(fresh.logits, committed.logits, atol=1e-5)
    checkpoint = tmp_path / CHECKPOINT.name
    for name in ("config.json", "vocab.json", "tokenizer_config.json"):
        fresh_values = json.loads((checkpoint / name).read_text())
        committed_values = json.loads((CHECKPOINT / name).read_text())
        fresh_values.pop("transformers_version", None)
        committed_values.pop("transformers_version", None)
        assert fresh_values == committed_values, name
    for name in ("source.spm", "target.spm"):
        assert (checkpoint / name).read_bytes() == (CHECKPOINT / name).read_bytes(), name
    # The regenerated weights import to the same model.
    encoder, decoder = committed.batch()
    inputs = {"encoder_token_ids": encoder, "decoder_token_ids": decoder}
    np.testing.assert_allclose(
        np.asarray(from_marian(checkpoint).model(inputs)),
        np.asarray(from_marian(CHECKPOINT).model(inputs)),
        atol=1e-6,
    )
