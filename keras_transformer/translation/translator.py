"""A trained translation model with its tokenizers: text in, text out.

Shape letters: B batch, S source length, T target length, L decoder layers,
H heads.
"""

import logging
import os
from pathlib import Path

import keras
import numpy as np

from keras_transformer.checks import check_choice, check_positive_int
from keras_transformer.data import END_ID, START_ID, detokenize, make_tokenizer, parse_direction
from keras_transformer.data.vocabularies import Vocabulary
from keras_transformer.models import Seq2SeqTransformer, check_seq2seq_model
from keras_transformer.optional import import_optional
from keras_transformer.translation.config import TranslationConfig
from keras_transformer.translation.run_directory import check_vocabulary_sizes, load_run

# Sentences decoded together, and the granularity of the padded source
# length: each (rows, length) shape compiles the decoding loop once.
BATCH_SIZE = 64
LENGTH_BUCKET = 8
# "auto" decodes requests of at most this many sentences with the exported
# LiteRT loop, one sentence at a time, and larger ones as XLA batches: on
# this project's machines one XLA batch of two greedy rows already beats two
# batch-1 loops (docs/performance.md).
LITERT_MAX_SENTENCES = 1
BACKENDS = ("auto", "xla", "litert")


def _bucket(value: int, granularity: int, limit: int) -> int:
    """`value` rounded up to a multiple of `granularity`, at most `limit`."""
    return min(-(-value // granularity) * granularity, limit)


def _until_end(ids: list[int]) -> list[int]:
    """Target ids up to and including the first `END_ID`."""
    return ids[: ids.index(END_ID) + 1] if END_ID in ids else ids


def _batch_rows(count: int) -> int:
    """`count` rounded up to a power of two, at most BATCH_SIZE."""
    return min(1 << (count - 1).bit_length(), BATCH_SIZE)


class Translator:
    """Translates sentences with a trained seq2seq Transformer.

    Args:
        model: a `Seq2SeqTransformer`.
        config: the run's `TranslationConfig`; its vocabulary sizes must
            equal the model's, and its `tokenizer` says what the
            vocabularies are.
        source_vocabulary, target_vocabulary: token lists, reserved tokens
            first, for "wordpiece"; serialized SentencePiece models (bytes)
            for "sentencepiece".
        direction: "source-target" language codes, such as "fr-en".
        run_dir: the run directory the model comes from, if any.
        backend: how sentences are decoded. "xla": the model's XLA-compiled
            `generate`, in batches. "litert": the search loop exported by
            `export_tflite` (float32, batch 1) and run by LiteRT, a
            sentence at a time; it needs the `export` extra, and its .tflite
            is exported on first use and cached (see `litert_loop`).
            "auto" (default): "litert" for requests of at most
            `LITERT_MAX_SENTENCES` sentences when the Keras backend is
            TensorFlow, LiteRT is installed and the model computes in
            float32, else "xla" (a `mixed_bfloat16` model, as the trainer
            validates it, decodes in bfloat16 with "xla" only: the exported
            loop is float32; `from_run_dir` loads such a model as its float32
            copy, `run_directory.decoding_model`). Both give the
            same translations (tested); the choice is logged at INFO level
            (the CLI's `--verbose`). `translate_n_best` always uses "xla".

    Example:
    >>> translator = Translator.from_run_dir("runs/embedded")  # doctest: +SKIP
    >>> translator.translate(["Je suis étudiant."])  # doctest: +SKIP
    ['I am a student.']
    """

    def __init__(
        self,
        model: Seq2SeqTransformer,
        config: TranslationConfig,
        source_vocabulary: Vocabulary,
        target_vocabulary: Vocabulary,
        direction: str = "fr-en",
        run_dir: str | os.PathLike | None = None,
        backend: str = "auto",
    ):
        model = check_seq2seq_model(model, "Translator")
        check_choice("backend", backend, BACKENDS)
        self.source_language, self.target_language = parse_direction(direction)
        tokenizer, lowercase = config.tokenizer, config.lowercase
        self.source_tokenizer = make_tokenizer(tokenizer, source_vocabulary, lowercase)
        self.target_tokenizer = make_tokenizer(tokenizer, target_vocabulary, lowercase)
        self.run_dir = None if run_dir is None else Path(run_dir)
        sizes = (
            self.source_tokenizer.vocabulary_size(),
            self.target_tokenizer.vocabulary_size(),
        )
        check_vocabulary_sizes(sizes, config, model, self.run_dir)
        self.model = model
        self.config = config
        self.direction = direction
        self.backend = backend
        if backend == "litert":
            import_optional("ai_edge_litert.interpreter", "export", "The LiteRT backend")
            if model.parts_compute_dtype != "float32":
                raise ValueError(
                    "backend='litert' runs the float32 loop of `export_tflite`; this model "
                    f"computes in {model.parts_compute_dtype} (a mixed precision policy), "
                    "and the LiteRT loop would translate differently. Use backend='xla' "
                    "or 'auto'."
                )
        self._litert_loops = {}  # beam size (1 = greedy) -> LiteRTLoop
        # The tokens of the ids, for `cross_attention`.
        self.source_vocabulary = self.source_tokenizer.get_vocabulary()
        self.target_vocabulary = self.target_tokenizer.get_vocabulary()

    @classmethod
    def from_run_dir(cls, run_dir: str | os.PathLike, backend: str = "auto") -> "Translator":
        """Loads the final model, config and vocabularies a `train` run wrote;
        `backend` as in the constructor.

        Raises:
            FileNotFoundError: the directory or one of its files is missing
                (the message names them).
            ValueError: config.json is malformed, model.keras is not a
                .keras archive, or the vocabulary sizes do not match the model.
            DataError: a vocabulary file or SentencePiece model is malformed.
        """
        run = load_run(run_dir)
        return cls(
            run.model,
            run.config,
            run.source_vocabulary,
            run.target_vocabulary,
            run.direction,
            run_dir=run.path,
            backend=backend,
        )

    def source_token_ids(self, texts: list[str]) -> list[list[int]]:
        """The encoder ids of sentences as in training: each sentence's tokens,
        cut to fit `max_sequence_length`, then `END_ID`."""
        limit = self.config.max_sequence_length - 1
        token_ids = self.source_tokenizer([text.strip() for text in texts])  # lists
        return [list(ids[:limit]) + [END_ID] for ids in token_ids]

    def choose_backend(self, num_sentences: int) -> str:
        """The backend that decodes a request of `num_sentences` sentences:
        "xla" or "litert" (see the constructor's `backend`)."""
        if self.backend != "auto":
            return self.backend
        if (
            num_sentences > LITERT_MAX_SENTENCES
            or keras.backend.backend() != "tensorflow"
            or self.model.parts_compute_dtype != "float32"
        ):
            return "xla"
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            return "xla"
        return "litert"

    def translate_token_ids(
        self, source_ids: list[list[int]], beam_size: int | None = None
    ) -> list[list[int]]:
        """Decodes encoder id lists into target id lists ending with `END_ID`
        (unless cut at `max_sequence_length`), with the backend that
        `choose_backend` picks: in batches sorted by length for "xla"."""
        beam_size = self.config.beam_size if beam_size is None else beam_size
        check_positive_int("beam_size", beam_size)
        backend = self.choose_backend(len(source_ids))
        logging.info(
            "Decoding %d sentences with the %s backend (%s).", len(source_ids), backend,
            f"beam {beam_size}" if beam_size > 1 else "greedy",
        )
        if backend == "litert":
            loop = self._litert_loop(beam_size)
            return [_until_end(loop(ids).tolist()) for ids in source_ids]
        return [hypotheses[0][0] for hypotheses in self._search(source_ids, beam_size)]

    def _litert_loop(self, beam_size: int):
        from keras_transformer.translation.litert_loop import LiteRTLoop

        if beam_size not in self._litert_loops:
            self._litert_loops[beam_size] = LiteRTLoop(
                self.model,
                decoding="beam" if beam_size > 1 else "greedy",
                beam_size=beam_size,
                length_penalty=self.config.length_penalty,
                start_token_id=START_ID,
                end_token_id=END_ID,
                max_length=self.config.max_sequence_length,
                run_dir=self.run_dir,
            )
        return self._litert_loops[beam_size]

    def _search(
        self, source_ids: list[list[int]], beam_size: int | None, n_best: int | None = None
    ) -> list[list[tuple[list[int], float | None]]]:
        """Per source, `(target ids, score)` of the best hypothesis (score
        None), or of the `n_best` best of a beam search with their
        length-penalized scores, best first."""
        beam_size = self.config.beam_size if beam_size is None else beam_size
        order = sorted(range(len(source_ids)), key=lambda row: len(source_ids[row]))
        results = [None] * len(source_ids)
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            length = _bucket(
                max(len(source_ids[row]) for row in rows),
                LENGTH_BUCKET,
                self.config.max_sequence_length,
            )
            batch = np.zeros((_batch_rows(len(rows)), length), "int32")  # (B, S)
            batch[len(rows) :, 0] = END_ID  # filler rows
            for index, row in enumerate(rows):
                batch[index, : len(source_ids[row])] = source_ids[row]
            tokens, scores = self._decode(batch, beam_size, n_best)  # (B, K, T), (B, K)
            for index, row in enumerate(rows):
                results[row] = [
                    (
                        _until_end(tokens[index, rank].tolist()),
                        None if scores is None else scores[index][rank],
                    )
                    for rank in range(tokens.shape[1])
                ]
        return results

    def _decode(self, encoder_token_ids: np.ndarray, beam_size: int, n_best: int | None):
        """Tokens (B, K, T) and, for `n_best`, float scores (B, K) of the
        search; K = 1 without `n_best`."""
        settings = {
            "start_token_id": START_ID,
            "end_token_id": END_ID,
            "max_length": self.config.max_sequence_length,
        }
        if beam_size > 1 or n_best is not None:
            settings.update(
                strategy="beam", beam_size=beam_size, length_penalty=self.config.length_penalty
            )
        if n_best is None:
            tokens, _ = self.model.generate(encoder_token_ids, **settings)  # (B, T)
            return np.asarray(tokens)[:, None], None
        tokens, scores = self.model.generate(
            encoder_token_ids, return_all_beams=True, **settings
        )  # (B, K, T), (B, K)
        return np.asarray(tokens)[:, :n_best], np.asarray(scores)[:, :n_best].tolist()

    def translate_n_best(
        self, texts: list[str], n_best: int, beam_size: int | None = None
    ) -> list[list[tuple[str, float]]]:
        """The `n_best` best translations of each sentence by beam search,
        with their scores, best first.

        A score is the hypothesis's log-probability divided by the GNMT
        length penalty (see `beam_search`); the first translation is the
        one `translate` gives with the same beam size. An empty or blank
        sentence gives `[("", 0.0)]`.

        Args:
            texts: source sentences.
            n_best: K translations per sentence, at most the beam size.
            beam_size: defaults to the config's `beam_size`.

        Returns:
            One list of K `(translation, score)` pairs per text, in order.

        Example:
        >>> translator.translate_n_best(["Je suis étudiant."], 2)  # doctest: +SKIP
        [[('I am a student.', -0.21), ('I am student.', -1.73)]]
        """
        beam_size = self.config.beam_size if beam_size is None else beam_size
        check_positive_int("n_best", n_best)
        if n_best > beam_size:
            raise ValueError(
                f"`n_best` must be at most the beam size, as the search keeps {beam_size} "
                f"hypotheses. Received n_best={n_best}; raise the beam size or lower n_best."
            )
        texts = self._check_texts(texts)
        rows = [row for row, text in enumerate(texts) if text]
        results = [[("", 0.0)] for _ in texts]
        if not rows:
            return results
        source_ids = self.source_token_ids([texts[row] for row in rows])
        searched = self._search(source_ids, beam_size, n_best)
        for row, hypotheses in zip(rows, searched):
            translations = detokenize(
                self.target_tokenizer, [ids for ids, _ in hypotheses], self.target_language
            )
            results[row] = [
                (translation, float(score))
                for translation, (_, score) in zip(translations, hypotheses)
            ]
        return results

    def translate(self, texts: list[str], beam_size: int | None = None) -> list[str]:
        """Translates sentences; an empty or blank sentence gives "".

        Args:
            texts: source sentences; surrounding whitespace is stripped.
            beam_size: K for beam search, 1 for greedy search; defaults to
                the config's `beam_size`.

        Returns:
            One translation per text, in order.
        """
        texts = self._check_texts(texts)
        rows = [row for row, text in enumerate(texts) if text]
        translations = [""] * len(texts)
        if not rows:
            return translations
        target_ids = self.translate_token_ids(
            self.source_token_ids([texts[row] for row in rows]), beam_size
        )
        decoded = detokenize(self.target_tokenizer, target_ids, self.target_language)
        for row, translation in zip(rows, decoded):
            translations[row] = translation
        return translations

    @staticmethod
    def _check_texts(texts: list[str]) -> list[str]:
        """The sentences stripped; ValueError unless a list of strings."""
        if isinstance(texts, str):
            raise ValueError(
                f"`texts` must be a list of sentences; received the string {texts!r}. "
                "Wrap one sentence in a list."
            )
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(
                    f"`texts` must hold sentences as strings. Received: texts[{index}]="
                    f"{text!r} of type {type(text).__name__}."
                )
        return [text.strip() for text in texts]

    def cross_attention(
        self, text: str, beam_size: int | None = None
    ) -> tuple[list[str], list[str], np.ndarray]:
        """Translates one sentence and returns the decoder's cross-attention.

        Args:
            text: the source sentence.
            beam_size: as in `translate`.

        Returns:
            `(source_tokens, target_tokens, weights)`: the S source tokens
            (ending with "[END]"), the T generated target tokens (ending with
            "[END]" unless cut at `max_sequence_length`), and float32 weights
            (L, H, T, S): how much the query predicting target token t
            attends to source token s, in each block and head.
        """
        if not isinstance(text, str):
            raise ValueError(
                f"`text` must be one sentence as a string. Received: {type(text).__name__}"
            )
        if not text.strip():
            raise ValueError("`text` is empty; the attention needs a sentence to translate.")
        (source_ids,) = self.source_token_ids([text])
        (target_ids,) = self.translate_token_ids([source_ids], beam_size)
        decoder_ids = [START_ID] + target_ids[:-1]
        encoder_token_ids = np.asarray([source_ids], "int32")  # (1, S)
        decoder_token_ids = np.asarray([decoder_ids], "int32")  # (1, T)
        weights = self.model.cross_attention_weights(
            encoder_token_ids, decoder_token_ids
        )  # (1, L, H, T, S)
        weights = keras.ops.convert_to_numpy(weights[0])
        return (
            [self.source_vocabulary[i] for i in source_ids],
            [self.target_vocabulary[i] for i in target_ids],
            weights,
        )
