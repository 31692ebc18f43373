"""A tiny French -> English translator, trained once per test session.

The model, its vocabularies and a held-out test set are written as a run
directory (the layout `keras-transformer train` writes), shared by the
pytest-xdist workers through a file lock: the first worker trains, the
others load.
"""

import fcntl
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_transformer import build_seq2seq_transformer
from keras_transformer.data import (
    END_ID,
    PAD_ID,
    build_tokenizer,
    generate_pairs,
    load_vocabulary,
    make_dataset,
    save_vocabulary,
    train_wordpiece_vocabulary,
)

MAX_SEQUENCE_LENGTH = 24
NUM_TRAIN, NUM_TEST = 3000, 100
TRAIN_STEPS = 200
CONFIG = {
    "num_layers": 1,
    "hidden_dim": 64,
    "num_heads": 4,
    "intermediate_dim": 128,
    "dropout": 0.0,
    "max_sequence_length": MAX_SEQUENCE_LENGTH,
    "lowercase": False,
    "beam_size": 4,
    "length_penalty": 0.6,
    "direction": "fr-en",
}


def _train_run_dir(run_dir: Path) -> None:
    keras.utils.set_random_seed(1234)
    pairs = generate_pairs(NUM_TRAIN + NUM_TEST, seed=1234)
    train, test = pairs[:NUM_TRAIN], pairs[NUM_TRAIN:]
    source_vocabulary = train_wordpiece_vocabulary([fr for fr, _ in train], 500)
    target_vocabulary = train_wordpiece_vocabulary([en for _, en in train], 500)
    model = build_seq2seq_transformer(
        len(source_vocabulary),
        len(target_vocabulary),
        **{name: CONFIG[name] for name in (
            "num_layers", "hidden_dim", "num_heads", "intermediate_dim", "dropout",
            "max_sequence_length",
        )},
    )
    dataset = make_dataset(
        train,
        build_tokenizer(source_vocabulary),
        build_tokenizer(target_vocabulary),
        batch_size=64,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        shuffle=True,
        seed=1234,
    ).repeat()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
    )
    model.fit(dataset, steps_per_epoch=TRAIN_STEPS, epochs=1, shuffle=False, verbose=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_vocabulary(source_vocabulary, run_dir / "source_vocabulary.txt")
    save_vocabulary(target_vocabulary, run_dir / "target_vocabulary.txt")
    config = {
        **CONFIG,
        "source_vocabulary_size": len(source_vocabulary),
        "target_vocabulary_size": len(target_vocabulary),
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (run_dir / "test.tsv").write_text(
        "".join(f"{fr}\t{en}\n" for fr, en in test), encoding="utf-8"
    )
    model.save(run_dir / "model.keras")  # last: its presence marks a finished run


class Translator:
    """The trained model, its tokenizers and test set, loaded in this worker."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.source_vocabulary = load_vocabulary(run_dir / "source_vocabulary.txt")
        self.target_vocabulary = load_vocabulary(run_dir / "target_vocabulary.txt")
        self.source_tokenizer = build_tokenizer(self.source_vocabulary)
        self.target_tokenizer = build_tokenizer(self.target_vocabulary)
        self.model = keras.saving.load_model(run_dir / "model.keras", compile=False)
        lines = (run_dir / "test.tsv").read_text(encoding="utf-8").splitlines()
        self.test_pairs = [tuple(line.split("\t")) for line in lines]

    def encoder_token_ids(
        self,
        sources: list[str],
        length: int | None = None,
        max_input_length: int = MAX_SEQUENCE_LENGTH,
    ) -> np.ndarray:
        """int32 (B, S) encoder ids as training builds them: at most
        `max_input_length - 1` tokens then [END], padded with 0 to the longest
        row or to `length`."""
        rows = [
            np.asarray(self.source_tokenizer(source)).tolist()[: max_input_length - 1]
            + [END_ID]
            for source in sources
        ]
        width = length or max(len(row) for row in rows)
        ids = np.zeros((len(rows), width), "int32")
        for index, row in enumerate(rows):
            ids[index, : len(row)] = row
        return ids


@pytest.fixture(scope="session")
def translator(tmp_path_factory, worker_id) -> Translator:
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    run_dir = shared / "export_tiny_run"
    with open(shared / "export_tiny_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (run_dir / "model.keras").exists():
            _train_run_dir(run_dir)
    return Translator(run_dir)


@pytest.fixture(scope="session")
def bleu_score():
    """Corpus BLEU (sacrebleu, 13a tokenization) of hypotheses against references."""
    import sacrebleu

    def score(hypotheses: list[str], references: list[str]) -> float:
        return sacrebleu.corpus_bleu(hypotheses, [references]).score

    return score


