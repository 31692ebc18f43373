"""The tiny Marian checkpoint of tests/convert/fixtures and its reference outputs.

make_marian_fixture.py wrote both with torch and transformers; the tests here
need neither. Ids in the reference are Marian's; `marian_to_ours` renumbers
them as the import does.
"""

import json
from pathlib import Path

import numpy as np

from keras_transformer.convert.marian import read_marian_config
from keras_transformer.convert.marian_vocabulary import read_vocabulary, vocabulary_map

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHECKPOINT = FIXTURES / "tiny-opus-mt-fr-en"


class Reference:
    """marian_reference.json and the logits, with ids renumbered to ours."""

    def __init__(self, directory: Path = FIXTURES):
        self.values = json.loads((directory / "marian_reference.json").read_text("utf-8"))
        self.logits = np.load(directory / "marian_reference_logits.npy")  # (B, T, V)
        config = read_marian_config(CHECKPOINT / "config.json")
        tokens = read_vocabulary(CHECKPOINT / "vocab.json", config["vocab_size"])
        self.vocabulary = vocabulary_map(
            tokens, tokens.index("<unk>"), config["eos_token_id"], config["pad_token_id"],
            config["decoder_start_token_id"],
        )
        self.marian_to_ours = self.vocabulary.marian_to_ours
        # `generate`'s max_length counts the start token; ours does not.
        self.max_length = self.values["max_length"] - 1

    def ours(self, name: str) -> list[list[int]]:
        """A list of Marian id lists of the reference, renumbered."""
        return [[int(self.marian_to_ours[i]) for i in row] for row in self.values[name]]

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The padded (encoder, decoder) ids of the logits, renumbered:
        padding -> 0, the decoder start (Marian's pad) -> [START] = 2."""
        encoder = np.asarray(self.values["encoder_ids"])
        encoder = np.where(np.asarray(self.values["encoder_mask"]) == 1,
                           self.marian_to_ours[encoder], 0)
        decoder_mask = np.asarray(self.values["decoder_mask"])  # of the targets
        decoder = self.marian_to_ours[np.asarray(self.values["decoder_ids"])]
        decoder[:, 0] = 2
        decoder = np.where(decoder_mask == 1, decoder, 0)  # a start, then real tokens
        return encoder.astype("int32"), decoder.astype("int32")


def first_rows(token_ids) -> list[list[int]]:
    """Rows of (B, T) ids up to and including [END] = 3, or without padding."""
    rows = []
    for row in np.asarray(token_ids).tolist():
        rows.append(row[: row.index(3) + 1] if 3 in row else [i for i in row if i != 0])
    return rows
