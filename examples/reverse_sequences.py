"""Train a small Transformer to reverse sequences and report exact match.

A built-in toy task that needs no data: the source is a random sequence of
symbols, the target is the same sequence reversed. Runs in a few minutes on
two CPU cores.

    python examples/reverse_sequences.py
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import keras_transformer as kt

PAD, START, END = 0, 1, 2
FIRST_SYMBOL = 3


def make_pairs(rng: np.random.Generator, count: int, vocabulary_size: int, max_length: int):
    """Random symbol sequences and their reversals, as padded id arrays.

    Returns:
        (source (N, max_length), decoder_inputs (N, max_length + 1),
        labels (N, max_length + 1)): decoder inputs start with START and
        labels end with END.
    """
    source = np.zeros((count, max_length), "int32")
    decoder_inputs = np.zeros((count, max_length + 1), "int32")
    labels = np.zeros((count, max_length + 1), "int32")
    for row in range(count):
        length = rng.integers(3, max_length + 1)
        symbols = rng.integers(FIRST_SYMBOL, vocabulary_size, length)
        target = symbols[::-1]
        source[row, :length] = symbols
        decoder_inputs[row, : length + 1] = np.concatenate([[START], target])
        labels[row, : length + 1] = np.concatenate([target, [END]])
    return source, decoder_inputs, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocabulary-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    source, decoder_inputs, labels = make_pairs(
        rng, args.train_size + args.test_size, args.vocabulary_size, args.max_length
    )
    train = slice(0, args.train_size)
    test = slice(args.train_size, None)
    dataset = (
        tf.data.Dataset.from_tensor_slices(
            (
                {"encoder_token_ids": source[train], "decoder_token_ids": decoder_inputs[train]},
                labels[train],
            )
        )
        .shuffle(args.train_size, seed=args.seed)
        .batch(64)
        .prefetch(tf.data.AUTOTUNE)
    )

    model = kt.build_seq2seq_transformer(
        args.vocabulary_size,
        args.vocabulary_size,
        num_layers=2,
        hidden_dim=64,
        num_heads=4,
        intermediate_dim=256,
        dropout=0.0,
        max_sequence_length=args.max_length + 1,
    )
    model.compile(
        optimizer=kt.training.transformer_adam(hidden_dim=64, warmup_steps=400, scale=2.0),
        loss=kt.training.MaskedSparseCategoricalCrossentropy(label_smoothing=0.0),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    started = time.perf_counter()
    model.fit(dataset, epochs=args.epochs, verbose=2)
    print(f"trained in {time.perf_counter() - started:.0f} s")

    predictions, _ = model.generate(
        source[test],
        max_length=args.max_length + 1,
        start_token_id=START,
        end_token_id=END,
    )
    predictions = np.asarray(predictions)
    padded = np.zeros_like(labels[test])
    padded[:, : predictions.shape[1]] = predictions
    exact = np.mean(np.all(padded == labels[test], axis=1))
    print(f"exact-match accuracy on {args.test_size} held-out sequences: {exact:.3f}")
    for row in range(3):
        length = int(np.sum(source[test][row] != PAD))
        print(f"  {source[test][row][:length].tolist()} -> {padded[row][:length].tolist()}")


if __name__ == "__main__":
    main()
