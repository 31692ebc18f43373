"""French -> English on Multi30k for a fixed CPU training budget, with a KerasHub anchor.

"ours" trains the recommended "small" recipe (`keras_transformer.translation.RECIPES`)
through the library's trainer, as `keras-transformer train` does:
`translation.train` on `multi30k/train` with `--validation-data multi30k/val`,
`--test-data multi30k/test_2016_flickr` and `--max-time` the budget, keeping
the best checkpoint by validation BLEU. It then reports sacrebleu BLEU
(default 13a tokenization, cased and lowercased) and chrF on
`test_2016_flickr`, greedy and with beam search.

The anchor, a model composed from KerasHub layers (`TokenAndPositionEmbedding`,
`TransformerEncoder`, `TransformerDecoder`, a Dense output, as in the keras.io
translation example), cannot go through the trainer, whose model builder and
decoding need a `Seq2SeqTransformer`. Its own loop gets the same treatment:
the same vocabularies (learned the same way), batches (`batch_size` or
`batch_tokens`), optimizer, budget, validation sample and evaluation points
(every `--validation-steps`, every epoch end and the budget's stop), and the
model of the best validation BLEU is the one tested. Its validation decodes
with KerasHub's own caches (`keras_hub_anchor.keras_hub_greedy_function`, XLA,
as `generate` does), in the same sorted, length-bucketed batches as ours, and
counts in its budget as ours does.

Both report, for every validation, the step and the seconds since training
began, so the validation curves compare at equal CPU time (time to BLEU).

    python benchmarks/multi30k.py                       # both models, 25 minutes each
    python benchmarks/multi30k.py --models ours --budget-minutes 5
    python benchmarks/multi30k.py --models ours --set tokenizer=sentencepiece
    python benchmarks/multi30k.py --budget-minutes 1 --validation-steps 40 \
        --validation-bleu-sentences 100 --test-sentences 100   # a quick check

Vocabulary learning and test decoding are outside the budget and timed
separately. Results depend on the machine's load: the script prints it.
"""

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from keras_hub_anchor import keras_hub_forward, keras_hub_greedy_function, keras_hub_layers

import keras_transformer as kt
from keras_transformer import translation
from keras_transformer.data import (
    END_ID,
    START_ID,
    TOKENIZERS,
    detokenize,
    make_dataset,
    make_tokenizer,
    read_parallel,
    token_counts,
    train_vocabulary,
)
from keras_transformer.training import dtype_policy_scope, resolve_dtype_policy
from keras_transformer.translation.config import RECIPES
from keras_transformer.translation.validation import (
    moving_average_weights,
    read_training_file,
    validation_sample,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "multi30k"


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` after the first batch that ends past the budget, as the
    trainer's `max_time` does (validation counts)."""

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


class BestByValidationBleu(keras.callbacks.Callback):
    """The anchor's validation, as the trainer's: greedy BLEU on the validation
    sample every `every_steps` steps, at every epoch end and at the budget's
    stop (the moving-average weights, if any); the best weights (ties: the
    later) are put back at the end. `seconds` is the time it took."""

    def __init__(self, decode, pairs, every_steps):
        super().__init__()
        self.decode = decode
        self.sources = [source for source, _ in pairs]
        self.references = [reference for _, reference in pairs]
        self.every_steps = every_steps
        self.evaluations = []  # (step, bleu, seconds since training began)
        self.best_weights = None
        self.seconds = 0.0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def evaluate(self):
        started = time.perf_counter()
        with moving_average_weights(self.model):
            bleu = sacrebleu.corpus_bleu(self.decode(self.sources), [self.references]).score
            if not self.evaluations or bleu >= max(item[1] for item in self.evaluations):
                self.best_weights = self.model.get_weights()
        now = time.perf_counter()
        self.evaluations.append((self._step(), bleu, now - self.started))
        self.seconds += now - started
        print(f"  validation BLEU {bleu:.2f} at step {self._step()}, "
              f"{now - self.started:.0f} s")

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self._step() % self.every_steps == 0:
            self.evaluate()

    def on_epoch_end(self, epoch, logs=None):
        if not self.evaluations or self.evaluations[-1][0] != self._step():
            self.evaluate()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def keras_hub_model(source_vocabulary_size, target_vocabulary_size, config):
    """The anchor: the keras.io English-Spanish example's model, sized like
    ours, and its parts (`keras_hub_layers`, plus the "logits" Dense), under
    the config's dtype policy with float32 logits, as ours."""
    with dtype_policy_scope(config.dtype_policy):
        hub = keras_hub_layers(
            source_vocabulary_size, target_vocabulary_size, num_layers=config.num_layers,
            hidden_dim=config.hidden_dim, num_heads=config.num_heads,
            intermediate_dim=config.intermediate_dim,
            max_sequence_length=config.max_sequence_length, dropout=config.dropout,
            mask_zero=True,
        )
    hub["logits"] = keras.layers.Dense(target_vocabulary_size, dtype="float32", name="logits")
    encoder_ids = keras.Input((None,), dtype="int32", name="encoder_token_ids")
    decoder_ids = keras.Input((None,), dtype="int32", name="decoder_token_ids")
    y = keras_hub_forward(hub, encoder_ids, decoder_ids)
    inputs = {"encoder_token_ids": encoder_ids, "decoder_token_ids": decoder_ids}
    return keras.Model(inputs, hub["logits"](y)), hub


def encode_sources(tokenizer, texts, max_length):
    """Source ids as the pipeline packs them: tokens, then END, padded with 0
    to a multiple of 8 (as `Translator` does, so XLA compiles few shapes)."""
    rows = tokenizer.tokenize(texts)
    if isinstance(rows, tf.RaggedTensor):
        rows = rows.to_list()
    rows = [list(row[: max_length - 1]) + [END_ID] for row in rows]
    length = min(-(-max(map(len, rows)) // 8) * 8, max_length)
    ids = np.zeros((len(rows), length), "int32")
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
    return ids


def translate(decode, tokenizer, source_tokenizer, sources, max_length, batch_size=64):
    """Decodes in batches of similar lengths, as `Translator` does, the
    last one filled up to `batch_size` rows with copies."""
    order = sorted(range(len(sources)), key=lambda row: len(sources[row]))
    hypotheses = [None] * len(sources)
    for first in range(0, len(order), batch_size):
        rows = order[first : first + batch_size]
        filled = rows + [rows[-1]] * (batch_size - len(rows))
        ids = encode_sources(source_tokenizer, [sources[row] for row in filled], max_length)
        decoded = detokenize(tokenizer, np.asarray(decode(ids))[: len(rows)])
        for row, hypothesis in zip(rows, decoded):
            hypotheses[row] = hypothesis
    return hypotheses


def scores(hypotheses, references):
    return {
        "BLEU": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "BLEU lowercased": sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score,
        "chrF": sacrebleu.corpus_chrf(hypotheses, [references]).score,
    }


def print_time_to_bleu(curves: dict) -> None:
    """Each model's validation curve, and the training minutes (validation
    included) it took to first reach each validation BLEU threshold."""
    for name, curve in curves.items():
        points = ", ".join(f"{bleu:.1f} @ {step} ({seconds / 60:.1f} min)"
                           for step, bleu, seconds in curve)
        print(f"{name} validation BLEU: {points}")
    print(f"{'minutes to validation BLEU':<28}" + "".join(f"{name:>12}" for name in curves))
    for threshold in (20, 30, 35, 40, 42, 44, 46, 48):
        cells = []
        for curve in curves.values():
            reached = [seconds for _, bleu, seconds in curve if bleu >= threshold]
            cells.append(f"{min(reached) / 60:12.1f}" if reached else f"{'-':>12}")
        print(f"{'>= ' + str(threshold):<28}" + "".join(cells))


def parse_config(recipe: str, assignments: list[str]):
    config = RECIPES[recipe]
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        field_type = type(getattr(config, key))
        if field_type is bool:
            parsed = {"true": True, "false": False}.get(value.lower())
            if parsed is None:
                raise SystemExit(f"--set {key}: expected true or false, received {value!r}")
        elif key == "batch_tokens":
            parsed = int(value)
        else:
            parsed = field_type(value)
        try:
            config = dataclasses.replace(config, **{key: parsed})
        except ValueError as error:  # the config's own check, e.g. an unknown tokenizer
            raise SystemExit(f"--set {key}: {error}") from None
    # Both models train under the policy that "auto" picks for this machine.
    return dataclasses.replace(config, dtype_policy=resolve_dtype_policy(config.dtype_policy))


def train_ours(args, config, output_dir):
    """Trains through `translation.train`, as `keras-transformer train`; returns
    the `Translator` of the final model (the best by validation BLEU) and the
    trainer's closing line."""
    translator = translation.train(
        config,
        output_dir,
        args.data / "train",
        "fr-en",
        epochs=10_000,  # the budget ends training
        validation_data=args.data / "val",
        test_data=args.data / "test_2016_flickr",
        validation_steps=args.validation_steps,
        validation_bleu_sentences=args.validation_bleu_sentences,
        max_time=args.budget_minutes,
        verbose=2,
    )
    curve = [
        (item["step"], item["bleu"], item["seconds"])
        for item in read_training_file(Path(output_dir))["evaluations"]
    ]
    return translator, translation.training_summary(output_dir), curve


def train_anchor(args, config, vocabularies, train, validation):
    """The KerasHub model in its own loop, with the trainer's data, budget and selection."""
    source_vocabulary, target_vocabulary = vocabularies
    source = make_tokenizer(config.tokenizer, source_vocabulary, config.lowercase)
    target = make_tokenizer(config.tokenizer, target_vocabulary, config.lowercase)
    batching = (
        {"batch_tokens": config.batch_tokens} if config.batch_tokens
        else {"batch_size": config.batch_size}
    )
    dataset = make_dataset(
        train, source, target, **batching, max_sequence_length=config.max_sequence_length,
        shuffle=True, seed=config.seed,
    )
    counts = token_counts(dataset)
    print(f"padding fraction of the train batches: {counts['padding'] / counts['positions']:.1%}")
    model, hub = keras_hub_model(source.vocabulary_size(), target.vocabulary_size(), config)
    model.compile(
        optimizer=kt.training.transformer_adam(**config.optimizer_kwargs()),
        loss=kt.training.MaskedSparseCategoricalCrossentropy(config.label_smoothing),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # As the trainer: no XLA, which would compile again for every
        # bucketed (S, T) shape (~20 s each on a CPU core).
        jit_compile=False,
    )
    max_length = config.max_sequence_length

    greedy = keras_hub_greedy_function(hub, max_length, hub["logits"], START_ID, END_ID)

    def decode(sources):
        return translate(greedy, target, source, sources, max_length)

    sample = validation_sample(validation, args.validation_bleu_sentences, config.seed)
    selection = BestByValidationBleu(decode, sample, args.validation_steps)
    budget = TimeBudget(args.budget_minutes * 60)
    print(f"{model.count_params():,} parameters")
    model.fit(
        dataset.repeat(), epochs=10_000, steps_per_epoch=counts["batches"],
        callbacks=[budget, selection], verbose=2,
    )
    best = max(selection.evaluations, key=lambda item: item[1])
    summary = (
        f"{budget.steps} steps ({budget.steps / counts['batches']:.2f} epochs), "
        f"{len(selection.evaluations)} validations in {selection.seconds:.0f} s (inside "
        f"its budget); best validation BLEU {best[1]:.2f} at step {best[0]}"
    )
    return greedy, summary, source, target, selection.evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budget-minutes", type=float, default=25.0)
    parser.add_argument("--models", default="ours,keras_hub")
    parser.add_argument("--recipe", default="small")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set warmup_steps=1000, --set batch_tokens=2000 "
        f"or --set tokenizer=sentencepiece (one of {TOKENIZERS}; for experiments)",
    )
    parser.add_argument("--validation-steps", type=int, default=300,
                        help="validation BLEU every N steps too (default 300)")
    parser.add_argument("--validation-bleu-sentences", type=int, default=500)
    parser.add_argument("--test-sentences", type=int, help="score only the first N test pairs")
    parser.add_argument("--output-dir", type=Path, help="ours' run directory (default: a new "
                        "temporary directory)")
    args = parser.parse_args()

    config = parse_config(args.recipe, args.set)
    train = read_parallel(args.data / "train.fr", args.data / "train.en")
    validation = read_parallel(args.data / "val.fr", args.data / "val.en")
    test = read_parallel(args.data / "test_2016_flickr.fr", args.data / "test_2016_flickr.en")
    test = test[: args.test_sentences]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"recipe {args.recipe}: {config}")
    sources = [source for source, _ in test]
    references = [target for _, target in test]
    max_length = config.max_sequence_length
    results, summaries, curves = {}, {}, {}

    for name in args.models.split(","):
        if name not in ("ours", "keras_hub"):
            raise SystemExit(f"--models: unknown model {name!r}; expected ours or keras_hub")
        keras.utils.set_random_seed(config.seed)
        print(f"\n== {name}: {args.budget_minutes} min budget")
        started = time.perf_counter()
        decoders = {}
        if name == "ours":
            output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="multi30k-ours-"))
            translator, summaries[name], curves[name] = train_ours(args, config, output_dir)
            print(f"run directory {output_dir}")
            model = translator.model
            source_tokenizer = translator.source_tokenizer
            target_tokenizer = translator.target_tokenizer
            search = {"start_token_id": START_ID, "end_token_id": END_ID, "max_length": max_length}
            decoders["greedy"] = lambda ids: model.generate(ids, **search)[0]
            decoders[f"beam {config.beam_size}"] = lambda ids: model.generate(
                ids, strategy="beam", beam_size=config.beam_size,
                length_penalty=config.length_penalty, **search,
            )[0]
        else:
            vocabularies = [
                train_vocabulary(
                    config.tokenizer, [pair[side] for pair in train], size, config.lowercase
                )
                for side, size in (
                    (0, config.source_vocabulary_size), (1, config.target_vocabulary_size)
                )
            ]
            (
                decoders["greedy"], summaries[name], source_tokenizer, target_tokenizer,
                curves[name],
            ) = train_anchor(args, config, vocabularies, train, validation)
        print(f"{name}: {summaries[name]} ({time.perf_counter() - started:.0f} s in all)")
        for decoding, decode in decoders.items():
            started = time.perf_counter()
            hypotheses = translate(decode, target_tokenizer, source_tokenizer, sources, max_length)
            results[f"{name}, {decoding}"] = scores(hypotheses, references)
            print(f"{name}, {decoding}: {results[f'{name}, {decoding}']} "
                  f"(decoded in {time.perf_counter() - started:.0f} s)")
            for source, hypothesis in list(zip(sources, hypotheses))[:3]:
                print(f"  {source}\n  -> {hypothesis}")

    print(f"\nMulti30k fr->en test_2016_flickr ({len(test)} sentences), "
          f"{args.budget_minutes:g} min training budget per model, "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, summary in summaries.items():
        print(f"{name}: {summary}")
    print(f"{'model, decoding':<24} {'BLEU':>6} {'BLEU lc':>8} {'chrF':>6}")
    for name, values in results.items():
        print(f"{name:<24} {values['BLEU']:6.1f} {values['BLEU lowercased']:8.1f} {values['chrF']:6.1f}")
    print_time_to_bleu(curves)
    print(f"recipe: {dataclasses.asdict(config)}")


if __name__ == "__main__":
    main()
