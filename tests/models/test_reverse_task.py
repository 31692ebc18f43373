"""End to end: a small Transformer learns to reverse sequences of symbols.

Ids: 0 padding, 1 start, 2 end, 3 ... V-1 symbols. The source is 3 to 8
random symbols, the target the same symbols reversed. The model trains with
`model.fit`, then greedy decoding (the prefix recomputed at every step,
batched over the held-out set) must reproduce the reversal exactly.
"""

import keras
import numpy as np
import pytest

from keras_transformer import build_seq2seq_transformer
from keras_transformer.training import (
    MaskedSparseCategoricalCrossentropy,
    transformer_adam,
)

PAD, START, END, FIRST_SYMBOL = 0, 1, 2, 3
VOCABULARY_SIZE = 13
MIN_LENGTH, MAX_LENGTH = 3, 8


def make_pairs(rng, count):
    """Returns source (N, MAX_LENGTH), decoder inputs and labels (N, MAX_LENGTH + 1)."""
    source = np.zeros((count, MAX_LENGTH), "int32")
    decoder_inputs = np.zeros((count, MAX_LENGTH + 1), "int32")
    labels = np.zeros((count, MAX_LENGTH + 1), "int32")
    for row in range(count):
        length = rng.integers(MIN_LENGTH, MAX_LENGTH + 1)
        target = rng.integers(FIRST_SYMBOL, VOCABULARY_SIZE, length)[::-1]
        source[row, :length] = target[::-1]
        decoder_inputs[row, : length + 1] = np.concatenate([[START], target])
        labels[row, : length + 1] = np.concatenate([target, [END]])
    return source, decoder_inputs, labels


def greedy_decode(model, source, max_length):
    """Appends the arg-max token to every prefix until all rows have ended."""
    prefix = np.full((len(source), 1), START, "int32")
    for _ in range(max_length):
        logits = model({"encoder_token_ids": source, "decoder_token_ids": prefix}, training=False)
        next_ids = np.argmax(keras.ops.convert_to_numpy(logits)[:, -1], axis=-1).astype("int32")
        prefix = np.concatenate([prefix, next_ids[:, None]], axis=1)
        if (prefix == END).any(axis=1).all():
            break
    return prefix[:, 1:]


def until_end(ids):
    ids = list(ids)
    return ids[: ids.index(END) + 1] if END in ids else ids


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")
def test_learns_to_reverse_sequences():
    rng = np.random.default_rng(0)
    source, decoder_inputs, labels = make_pairs(rng, 6400)
    test_source, _, test_labels = make_pairs(rng, 400)
    seen = {tuple(row) for row in source}
    held_out = np.array([tuple(row) not in seen for row in test_source])
    test_source, test_labels = test_source[held_out], test_labels[held_out]
    assert len(test_source) > 200

    model = build_seq2seq_transformer(
        VOCABULARY_SIZE, VOCABULARY_SIZE, num_layers=2, hidden_dim=64, num_heads=2,
        intermediate_dim=128, dropout=0.0, max_sequence_length=MAX_LENGTH + 1,
    )
    model.compile(
        optimizer=transformer_adam(64, warmup_steps=100, scale=0.15, clipnorm=1.0),
        loss=MaskedSparseCategoricalCrossentropy(label_smoothing=0.0),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    history = model.fit(
        {"encoder_token_ids": source, "decoder_token_ids": decoder_inputs}, labels,
        batch_size=64, epochs=10, verbose=0,
    )
    assert history.history["accuracy"][-1] > 0.98

    predictions = greedy_decode(model, test_source, MAX_LENGTH + 1)
    exact = [until_end(got) == until_end(want) for got, want in zip(predictions, test_labels)]
    assert np.mean(exact) >= 0.95
