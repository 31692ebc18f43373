"""Atomic writes: the target is complete or untouched, and no temporary is left."""

import os
import stat
from pathlib import Path

import keras
import pytest

from keras_transformer.files import atomic_directory, atomic_file, write_file_atomic


def test_write_file_atomic_writes_text_and_bytes_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "file.txt"
    write_file_atomic(path, "één")
    assert path.read_text(encoding="utf-8") == "één"
    write_file_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_file_atomic_refuses_to_overwrite_when_asked(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError, match=r"model\.tflite already exists\. Pass `overwrite"):
        write_file_atomic(path, b"new", overwrite=False)
    assert path.read_bytes() == b"old"


def test_atomic_file_leaves_the_target_on_failure(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as temporary:
            assert Path(temporary).name.startswith(".") and temporary.endswith("-model.keras")
            Path(temporary).write_bytes(b"partial")
            raise RuntimeError("save failed")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_atomic_file_takes_a_keras_model(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with atomic_file(tmp_path / "model.keras") as temporary:
        model.save(temporary)
    with atomic_file(tmp_path / "model.weights.h5") as temporary:
        model.save_weights(temporary)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "model.weights.h5"]
    assert keras.saving.load_model(tmp_path / "model.keras").count_params() == 3


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "models" / "translator" / "1"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as temporary:
            Path(temporary, "saved_model.pb").write_bytes(b"partial")
            raise RuntimeError("export failed")
    assert not target.exists() and os.listdir(target.parent) == []
    with atomic_directory(target) as temporary:
        Path(temporary, "saved_model.pb").write_bytes(b"done")
    assert (target / "saved_model.pb").read_bytes() == b"done"
    with atomic_directory(target, overwrite=True) as temporary:
        Path(temporary, "saved_model.pb").write_bytes(b"new")
    assert (target / "saved_model.pb").read_bytes() == b"new"
    assert os.listdir(target.parent) == ["1"]
