"""French -> English on Multi30k for a fixed CPU training budget, with a KerasHub anchor.

Trains the recommended "small" recipe (`keras_transformer.translation.RECIPES`)
on `../shared/data/multi30k` for `--budget-minutes` of wall-clock training,
then reports sacrebleu BLEU (default 13a tokenization, cased and lowercased)
and chrF on `test_2016_flickr`. In the same run, a model composed from KerasHub
layers (`TokenAndPositionEmbedding`, `TransformerEncoder`, `TransformerDecoder`,
a Dense output, as in the keras.io translation example) with the same sizes,
data, optimizer and budget is the anchor to beat.

    python benchmarks/multi30k.py                       # both models, 25 minutes each
    python benchmarks/multi30k.py --models ours --budget-minutes 5
    python benchmarks/multi30k.py --models ours --set tokenizer=sentencepiece

The budget counts training steps only (vocabulary learning and decoding are
timed separately). Results depend on the machine's load: the script prints it.
"""

import argparse
import dataclasses
import os
import time
from pathlib import Path

import keras
import keras_hub
import numpy as np
import sacrebleu
import tensorflow as tf

import keras_transformer as kt
from keras_transformer.data import (
    END_ID,
    START_ID,
    TOKENIZERS,
    detokenize,
    make_dataset,
    make_tokenizer,
    padding_fraction,
    read_parallel,
    train_vocabulary,
)
from keras_transformer.translation.config import RECIPES

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "multi30k"


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` after the first batch that ends past the budget."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.started > self.seconds:
            self.model.stop_training = True


def keras_hub_model(source_vocabulary_size, target_vocabulary_size, config):
    """The anchor: the keras.io English-Spanish example's model, sized like ours."""
    encoder_ids = keras.Input((None,), dtype="int32", name="encoder_token_ids")
    decoder_ids = keras.Input((None,), dtype="int32", name="decoder_token_ids")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        source_vocabulary_size, config.max_sequence_length, config.hidden_dim, mask_zero=True
    )(encoder_ids)
    for _ in range(config.num_layers):
        x = keras_hub.layers.TransformerEncoder(
            config.intermediate_dim, config.num_heads, dropout=config.dropout
        )(x)
    encoded = x
    y = keras_hub.layers.TokenAndPositionEmbedding(
        target_vocabulary_size, config.max_sequence_length, config.hidden_dim, mask_zero=True
    )(decoder_ids)
    for _ in range(config.num_layers):
        y = keras_hub.layers.TransformerDecoder(
            config.intermediate_dim, config.num_heads, dropout=config.dropout
        )(y, encoded)
    logits = keras.layers.Dense(target_vocabulary_size, name="logits")(y)
    return keras.Model({"encoder_token_ids": encoder_ids, "decoder_token_ids": decoder_ids}, logits)


def greedy_recompute(model, encoder_token_ids, max_length):
    """Greedy decoding that reruns the whole prefix each step (for the anchor)."""
    predict = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    batch_size = encoder_token_ids.shape[0]
    decoder_ids = np.full((batch_size, 1), START_ID, "int32")
    finished = np.zeros(batch_size, bool)
    for _ in range(max_length):
        logits = predict({"encoder_token_ids": encoder_token_ids, "decoder_token_ids": decoder_ids})
        next_ids = np.argmax(logits[:, -1, 1:], axis=-1).astype("int32") + 1  # never padding
        next_ids = np.where(finished, 0, next_ids)
        decoder_ids = np.concatenate([decoder_ids, next_ids[:, None]], axis=1)
        finished |= next_ids == END_ID
        if finished.all():
            break
    return decoder_ids[:, 1:]


def encode_sources(tokenizer, texts, max_length):
    """Source ids as the pipeline packs them: tokens, then END, padded with 0."""
    rows = tokenizer.tokenize(texts)
    if isinstance(rows, tf.RaggedTensor):
        rows = rows.to_list()
    rows = [list(row[: max_length - 1]) + [END_ID] for row in rows]
    ids = np.zeros((len(rows), max(map(len, rows))), "int32")
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
    return ids


def translate(decode, tokenizer, source_tokenizer, sources, max_length, batch_size=100):
    hypotheses = []
    for first in range(0, len(sources), batch_size):
        ids = encode_sources(source_tokenizer, sources[first : first + batch_size], max_length)
        hypotheses += detokenize(tokenizer, np.asarray(decode(ids)))
    return hypotheses


def scores(hypotheses, references):
    return {
        "BLEU": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "BLEU lowercased": sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score,
        "chrF": sacrebleu.corpus_chrf(hypotheses, [references]).score,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budget-minutes", type=float, default=25.0)
    parser.add_argument("--models", default="ours,keras_hub")
    parser.add_argument("--recipe", default="small")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set warmup_steps=1000 or "
        f"--set tokenizer=sentencepiece (one of {TOKENIZERS}; for experiments)",
    )
    args = parser.parse_args()

    config = RECIPES[args.recipe]
    for assignment in args.set:
        key, _, value = assignment.partition("=")
        field_type = type(getattr(config, key))
        if field_type is bool:
            parsed = {"true": True, "false": False}.get(value.lower())
            if parsed is None:
                raise SystemExit(f"--set {key}: expected true or false, received {value!r}")
        else:
            parsed = field_type(value)
        try:
            config = dataclasses.replace(config, **{key: parsed})
        except ValueError as error:  # the config's own check, e.g. an unknown tokenizer
            raise SystemExit(f"--set {key}: {error}") from None
    keras.utils.set_random_seed(config.seed)
    train = read_parallel(args.data / "train.fr", args.data / "train.en")
    test = read_parallel(args.data / "test_2016_flickr.fr", args.data / "test_2016_flickr.en")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"recipe {args.recipe}: {config}")

    started = time.perf_counter()
    source_vocabulary = train_vocabulary(
        config.tokenizer, [source for source, _ in train], config.source_vocabulary_size,
        config.lowercase,
    )
    target_vocabulary = train_vocabulary(
        config.tokenizer, [target for _, target in train], config.target_vocabulary_size,
        config.lowercase,
    )
    source_tokenizer = make_tokenizer(config.tokenizer, source_vocabulary, config.lowercase)
    target_tokenizer = make_tokenizer(config.tokenizer, target_vocabulary, config.lowercase)
    source_size = source_tokenizer.vocabulary_size()
    target_size = target_tokenizer.vocabulary_size()
    print(
        f"{config.tokenizer} vocabularies: {source_size} fr, {target_size} en "
        f"in {time.perf_counter() - started:.0f} s"
    )

    def train_dataset():
        # Built after each reseeding: `set_random_seed` frees the graph
        # resource of a SentencePiece tokenizer built before it.
        source = make_tokenizer(config.tokenizer, source_vocabulary, config.lowercase)
        target = make_tokenizer(config.tokenizer, target_vocabulary, config.lowercase)
        return make_dataset(
            train, source, target, batch_size=config.batch_size,
            max_sequence_length=config.max_sequence_length, shuffle=True, seed=config.seed,
        )

    padding = padding_fraction(train_dataset())
    print(f"padding fraction of the bucketed train batches: {padding:.1%}")

    sources = [source for source, _ in test]
    references = [target for _, target in test]
    results = {}
    for name in args.models.split(","):
        keras.utils.set_random_seed(config.seed)
        dataset = train_dataset().repeat()
        if name == "ours":
            model = kt.build_seq2seq_transformer(source_size, target_size, **config.model_kwargs())
        elif name == "keras_hub":
            model = keras_hub_model(source_size, target_size, config)
        else:
            raise SystemExit(f"--models: unknown model {name!r}; expected ours or keras_hub")
        model.compile(
            optimizer=kt.training.transformer_adam(**config.optimizer_kwargs()),
            loss=kt.training.MaskedSparseCategoricalCrossentropy(config.label_smoothing),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            # As the trainer: no XLA, which would compile again for every
            # bucketed (S, T) shape (~20 s each on a CPU core).
            jit_compile=False,
        )
        budget = TimeBudget(args.budget_minutes * 60)
        steps_per_epoch = len(train) // config.batch_size
        print(f"\n== {name}: {model.count_params():,} parameters, {args.budget_minutes} min budget")
        model.fit(
            dataset, epochs=10_000, steps_per_epoch=steps_per_epoch, callbacks=[budget], verbose=2
        )
        trained = time.perf_counter() - budget.started
        print(f"{name}: {budget.steps} steps ({budget.steps / steps_per_epoch:.2f} epochs) in {trained:.0f} s")

        max_length = config.max_sequence_length
        search = {"start_token_id": START_ID, "end_token_id": END_ID, "max_length": max_length}
        decoders = {}
        if name == "ours":
            decoders["greedy"] = lambda ids: model.generate(ids, **search)[0]
            decoders[f"beam {config.beam_size}"] = lambda ids: model.generate(
                ids, strategy="beam", beam_size=config.beam_size,
                length_penalty=config.length_penalty, **search,
            )[0]
        else:
            decoders["greedy"] = lambda ids: greedy_recompute(model, ids, max_length)
        for decoding, decode in decoders.items():
            started = time.perf_counter()
            hypotheses = translate(decode, target_tokenizer, source_tokenizer, sources, max_length)
            results[f"{name}, {decoding}"] = scores(hypotheses, references)
            print(f"{name}, {decoding}: {results[f'{name}, {decoding}']} "
                  f"(decoded in {time.perf_counter() - started:.0f} s)")
            for source, hypothesis in list(zip(sources, hypotheses))[:3]:
                print(f"  {source}\n  -> {hypothesis}")

    print(f"\nMulti30k fr->en test_2016_flickr, {args.budget_minutes:g} min training budget "
          f"per model, load average {os.getloadavg()[0]:.2f}")
    print(f"{'model, decoding':<24} {'BLEU':>6} {'BLEU lc':>8} {'chrF':>6}")
    for name, values in results.items():
        print(f"{name:<24} {values['BLEU']:6.1f} {values['BLEU lowercased']:8.1f} {values['chrF']:6.1f}")
    print(f"recipe: {dataclasses.asdict(config)}")


if __name__ == "__main__":
    main()
