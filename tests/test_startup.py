"""First contact: `import keras_transformer` and `keras-transformer --help` /
`--version` load neither Keras nor TensorFlow, and the subcommands print no
TensorFlow start-up lines unless `--verbose`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keras_transformer

SOURCE_ROOT = str(Path(keras_transformer.__file__).resolve().parent.parent)
HEAVY = ("tensorflow", "keras", "keras_hub", "tensorflow_text", "jax", "matplotlib")


def run_python(*argv, env=None):
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    environment["PYTHONPATH"] = SOURCE_ROOT
    environment.update(env or {})
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          env=environment, cwd="/", timeout=300)


def heavy_modules_after(script):
    """Runs `script`, then prints which heavy modules it imported."""
    report = f"""
import json, sys
{script}
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {HEAVY!r})))
"""
    result = run_python("-c", report)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_do_not_import_tensorflow(flag):
    script = f"""
from keras_transformer.cli import main
try:
    main([{flag!r}])
except SystemExit as exit:
    assert exit.code == 0, exit.code
"""
    imported, result = heavy_modules_after(script)
    assert imported == []
    assert result.stderr == ""
    if flag == "--version":
        assert result.stdout.splitlines()[0] == (
            f"{keras_transformer.DISTRIBUTION} {keras_transformer.__version__}"
        )
    else:
        assert result.stdout.startswith("usage: keras-transformer")


def test_import_is_lazy_and_reaches_every_subpackage():
    imported, _ = heavy_modules_after(
        "import os, keras_transformer as kt\nassert os.environ['KERAS_BACKEND'] == 'tensorflow'"
    )
    assert imported == []
    import keras_transformer as kt

    for name in (
        "layers", "models", "training", "decoding", "export", "data", "translation", "convert",
    ):
        assert getattr(kt, name).__name__ == f"keras_transformer.{name}"
        assert name in dir(kt)
    assert kt.build_seq2seq_transformer is kt.models.build_seq2seq_transformer
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        kt.nonexistent  # noqa: B018


def test_seq2seq_transformer_is_reexported():
    import keras_transformer as kt

    assert "Seq2SeqTransformer" in kt.__all__
    if "Seq2SeqTransformer" not in vars(kt.models):
        pytest.skip("keras_transformer.models has no Seq2SeqTransformer yet")
    assert kt.Seq2SeqTransformer is kt.models.Seq2SeqTransformer


def test_a_subcommand_prints_no_tensorflow_start_up_lines(tmp_path):
    argv = ["-m", "keras_transformer", "translate", "--run-dir", str(tmp_path / "nowhere"), "Hi."]
    result = run_python(*argv)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        line for line in result.stderr.splitlines() if line.startswith("keras-transformer")
    ]
    assert len(result.stderr.splitlines()) == 1, result.stderr
    verbose = run_python(*argv[:3], "--verbose", *argv[3:])
    assert verbose.returncode == 2
    assert verbose.stderr.splitlines()[-1] == result.stderr.strip()


@pytest.mark.parametrize("imports", ["import keras\nimport keras_transformer",
                                     "import keras_transformer as kt\nkt.models\nimport keras"])
def test_keras_load_model_finds_the_classes_after_importing_the_package(tmp_path, imports):
    import keras

    import keras_transformer as kt

    model = kt.models.build_seq2seq_transformer(
        20, 20, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=8,
        max_sequence_length=8,
    )
    model.compile(optimizer=kt.training.transformer_adam(hidden_dim=8),
                  loss=kt.training.MaskedSparseCategoricalCrossentropy())
    path = tmp_path / "model.keras"
    model.save(path)
    script = f"""
{imports}
model = keras.saving.load_model({str(path)!r})
print(type(model).__name__, type(model.loss).__name__)
"""
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["Seq2SeqTransformer", "MaskedSparseCategoricalCrossentropy"]
    assert keras.saving.load_model(path, compile=False).count_params() == model.count_params()
