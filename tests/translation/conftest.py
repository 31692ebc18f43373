"""A tiny corpus and a tiny trained run directory, shared by the translation tests."""

import json

import pytest

from keras_transformer.data import generate_pairs

# A model small enough to train an epoch on a few hundred pairs in seconds.
TINY_OVERRIDES = {
    "recipe": "tiny",
    "num_layers": 1,
    "hidden_dim": 32,
    "num_heads": 2,
    "intermediate_dim": 64,
    "dropout": 0.0,
    "max_sequence_length": 16,
    "source_vocabulary_size": 300,
    "target_vocabulary_size": 300,
    "batch_size": 32,
    "epochs": 1,
    "warmup_steps": 20,
    "beam_size": 2,
    # A few steps of training: the tiny recipe's weight average (over ~1000
    # steps) would leave these models near their initial weights.
    "ema_momentum": 0.0,
}


def write_corpus(path, num_pairs=300):
    """A Tatoeba-format file (English<TAB>French) of generated pairs."""
    pairs = generate_pairs(num_pairs=num_pairs, seed=5)
    path.write_text("".join(f"{en}\t{fr}\n" for fr, en in pairs), encoding="utf-8")
    return path


def write_config(path, **changes):
    path.write_text(json.dumps({**TINY_OVERRIDES, **changes}), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_files")
    return write_corpus(directory / "corpus.tsv"), write_config(directory / "config.json")


@pytest.fixture(scope="session")
def trained_run(tiny_files, tmp_path_factory):
    """A finished run directory trained with the Python API; returns (path, translator)."""
    from keras_transformer.translation import train

    corpus, config = tiny_files
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    translator = train(str(config), run_dir, data=corpus, verbose=0)
    return run_dir, translator
