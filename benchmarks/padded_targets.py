"""What skipping padded target positions in the output projection and the loss
would gain in a training step (issue #21).

Times three training steps (`tf.function`, no XLA, as the trainer runs) on
the same Multi30k batches, bucketed as the trainer makes them, with the small
recipe's model and optimizer:

- "full": `loss(labels, model(inputs))`, the (B, T, V) logits of every
  position, padded ones included (what `model.fit` runs);
- "compact": the decoder's (B, T, D) outputs gathered at the N non-padded
  label positions, projected to (N, V) and scored there only; `model.fit`
  cannot run this without a train step of its own, since Keras hands the loss
  and the metrics the model's (B, T, V) output;
- "scatter": the compact logits scattered back into a (B, T, V) tensor of
  zeros, which keeps Keras's contract (the loss then scores padded rows of
  zeros too).

Before timing, the three losses of the first batch (no dropout, same
weights) are compared: they must agree.

    python benchmarks/padded_targets.py
    python benchmarks/padded_targets.py --dtype-policy mixed_bfloat16
"""

import argparse
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_transformer.data import make_dataset, make_tokenizer, read_parallel, train_vocabulary
from keras_transformer.models import build_seq2seq_transformer
from keras_transformer.training import (
    MaskedSparseCategoricalCrossentropy,
    dtype_policy_scope,
    transformer_adam,
)
from keras_transformer.translation.config import RECIPES

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "multi30k"


def losses(model, loss):
    """The three losses, each (inputs, labels, training) -> scalar."""

    def decoder_outputs(inputs, training):  # (B, T, D), as the model's forward pass
        encoder_outputs, encoder_mask = model._encode(
            inputs["encoder_token_ids"], training=training
        )
        x = model.decoder_embedding(inputs["decoder_token_ids"])
        x = model.decoder_embedding_dropout(x, training=training)
        return model.decoder(
            x, encoder_outputs, encoder_padding_mask=encoder_mask, training=training
        )

    def full(inputs, labels, training):
        return loss(labels, model(inputs, training=training))

    def compact(inputs, labels, training):
        keep = labels != 0  # (B, T)
        x = tf.boolean_mask(decoder_outputs(inputs, training), keep)  # (N, D)
        return loss(tf.boolean_mask(labels, keep)[None], model._head(x[None]))  # (1, N, V)

    def scatter(inputs, labels, training):
        where = tf.where(labels != 0)  # (N, 2)
        x = tf.gather_nd(decoder_outputs(inputs, training), where)  # (N, D)
        logits = model._head(x[None])[0]  # (N, V)
        shape = tf.concat([tf.shape(labels, out_type="int64"), [logits.shape[-1]]], axis=0)
        return loss(labels, tf.scatter_nd(where, logits, shape))  # (B, T, V)

    return {"full": full, "compact": compact, "scatter": scatter}


def training_steps(model, optimizer, forwards):
    """A training step of each loss, (inputs, labels) -> loss."""

    def train(forward):
        @tf.function(reduce_retracing=True)
        def step(inputs, labels):
            with tf.GradientTape() as tape:
                value = forward(inputs, labels, training=True)
            gradients = tape.gradient(value, model.trainable_variables)
            optimizer.apply(gradients, model.trainable_variables)
            return value

        return step

    return {name: train(forward) for name, forward in forwards.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dtype-policy", default="float32")
    parser.add_argument("--batches", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    config = RECIPES["small"]
    keras.utils.set_random_seed(config.seed)
    train = read_parallel(args.data / "train.fr", args.data / "train.en")
    tokenizers = [
        make_tokenizer(config.tokenizer, train_vocabulary(
            config.tokenizer, [pair[side] for pair in train], size, config.lowercase
        ), config.lowercase)
        for side, size in ((0, config.source_vocabulary_size), (1, config.target_vocabulary_size))
    ]
    dataset = make_dataset(
        train, *tokenizers, batch_size=config.batch_size,
        max_sequence_length=config.max_sequence_length, shuffle=True, seed=config.seed,
    )
    batches = list(dataset.take(args.batches))
    labels = [batch[1].numpy() for batch in batches]
    padding = 1 - sum((y != 0).sum() for y in labels) / sum(y.size for y in labels)
    with dtype_policy_scope(args.dtype_policy):
        model = build_seq2seq_transformer(
            tokenizers[0].vocabulary_size(), tokenizers[1].vocabulary_size(),
            **config.model_kwargs(),
        )
    forwards = losses(model, MaskedSparseCategoricalCrossentropy(config.label_smoothing))
    first = {name: float(forward(*batches[0], training=False)) for name, forward in forwards.items()}
    print(f"first batch's loss, no dropout: {first}")
    if max(first.values()) - min(first.values()) > 1e-3 * first["full"]:
        raise RuntimeError("the three losses differ: the steps do not compute the same thing")
    runs = training_steps(model, transformer_adam(**config.optimizer_kwargs()), forwards)
    for step in runs.values():  # trace the batch shapes
        for batch in batches[1:20]:
            step(*batch)
    seconds = {name: 0.0 for name in runs}
    for _ in range(args.rounds):
        for batch in batches:
            for name, step in runs.items():
                start = time.perf_counter()
                step(*batch).numpy()
                seconds[name] += time.perf_counter() - start
    count = args.rounds * len(batches)
    print(
        f"small recipe, {args.dtype_policy}, {len(batches)} Multi30k batches of "
        f"{config.batch_size} x {args.rounds} rounds, target padding {padding:.1%}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    for name, total in seconds.items():
        print(f"{name:8s} {1000 * total / count:7.1f} ms/step  {seconds['full'] / total:.3f}x full")


if __name__ == "__main__":
    main()
