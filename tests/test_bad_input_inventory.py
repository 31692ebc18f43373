"""The bad-input inventory (issue 7): one table row per bad input of a public entry point.

Every row names the entry point and the bad input (its id), triggers it, and
checks the exception type and that the message names what was received and
what was expected. CLI rows run `keras_transformer.cli.main` in-process and
check exit code 2 and a one-line message on stderr, without a traceback.
docs/bad_input.md lists the same table.
"""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transformer as kt
from keras_transformer import data, decoding, layers, training
from keras_transformer.cli import main
from keras_transformer.data import DataError
from keras_transformer.export import export_from_run_dir, export_saved_model, export_tflite
from keras_transformer.translation import (
    TranslationConfig,
    Translator,
    evaluate,
    resolve_config,
    score,
    train,
)

VOCABULARY = data.RESERVED_TOKENS + ["je", "suis", "I", "am", "."]
V = len(VOCABULARY)  # 9
CONFIG = TranslationConfig(
    num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=8, dropout=0.0,
    max_sequence_length=8, source_vocabulary_size=V, target_vocabulary_size=V, beam_size=2,
)
MARIAN_CHECKPOINT = Path(__file__).resolve().parent / "convert" / "fixtures" / "tiny-opus-mt-fr-en"
CLI = "exit code 2"  # the expected outcome of a CLI row
X = np.ones((2, 4, 8), "float32")  # (B, T, D)
IDS = np.array([[4, 5, 3, 0]], "int32")  # (B, S)
SEARCH = {"start_token_id": data.START_ID, "end_token_id": data.END_ID, "max_length": 4}


def tiny_model(**overrides):
    return kt.build_seq2seq_transformer(V, V, **{**CONFIG.model_kwargs(), **overrides})


def tiny_parts(**overrides):
    """The parts of a `Seq2SeqTransformer` over V ids, D = 8, with `overrides`."""
    return {
        "encoder_embedding": layers.TokenAndPositionEmbedding(V, 8, 8),
        "encoder": layers.TransformerEncoder(1, num_heads=2, intermediate_dim=8),
        "decoder_embedding": layers.TokenAndPositionEmbedding(V, 8, 8),
        "decoder": layers.TransformerDecoder(1, num_heads=2, intermediate_dim=8),
        **overrides,
    }


def functional_model():
    """A plain functional `keras.Model` with the seq2seq inputs: not decodable."""
    encoder_token_ids = keras.Input((None,), dtype="int32", name=data.ENCODER_INPUT)
    decoder_token_ids = keras.Input((None,), dtype="int32", name=data.DECODER_INPUT)
    x = layers.TokenAndPositionEmbedding(V, 8, 8)(decoder_token_ids)  # (B, T, D)
    return keras.Model(
        {data.ENCODER_INPUT: encoder_token_ids, data.DECODER_INPUT: decoder_token_ids},
        keras.layers.Dense(V)(x),
    )


def built(layer, *inputs):
    layer(*inputs)
    return layer


def lines(*texts):
    return "".join(f"{text}\n" for text in texts)


class Context:
    """What a row may use: a tiny model, a finished run directory to copy, tmp_path."""

    def __init__(self, shared, tmp_path):
        self.model, self.learned_model, self.template, self.sentencepiece_template = shared
        self.tmp = tmp_path

    def file(self, name, text):
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path

    def parallel(self, source_lines, target_lines):
        """Line-aligned files PREFIX.fr and PREFIX.en; returns PREFIX."""
        self.file("corpus.fr", lines(*source_lines))
        self.file("corpus.en", lines(*target_lines))
        return self.tmp / "corpus"

    def marian(self, *, remove=(), config=None):
        """A copy of the tiny Marian checkpoint of tests/convert, with files
        removed or config.json keys changed."""
        checkpoint = self.tmp / "checkpoint"
        shutil.copytree(MARIAN_CHECKPOINT, checkpoint)
        for name in remove:
            (checkpoint / name).unlink()
        values = json.loads((checkpoint / "config.json").read_text())
        (checkpoint / "config.json").write_text(json.dumps({**values, **(config or {})}))
        return checkpoint

    def run(self, *, remove=(), write=None, config=None, drop=(), sentencepiece=False):
        """A copy of the finished run directory (WordPiece, or SentencePiece
        with `sentencepiece=True`), with files removed or rewritten and
        config.json keys changed or dropped."""
        run_dir = self.tmp / "run"
        shutil.copytree(self.sentencepiece_template if sentencepiece else self.template, run_dir)
        for name in remove:
            (run_dir / name).unlink()
        for name, text in (write or {}).items():
            (run_dir / name).write_text(text, encoding="utf-8")
        values = json.loads((run_dir / "config.json").read_text())
        values.update(config or {})
        for key in drop:
            values.pop(key)
        (run_dir / "config.json").write_text(json.dumps(values))
        return run_dir


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    model = tiny_model()
    learned = tiny_model(max_sequence_length=4, position_encoding="learned")
    template = tmp_path_factory.mktemp("inventory") / "run"
    template.mkdir()
    model.save(template / "model.keras")
    for side in ("source", "target"):
        data.save_vocabulary(VOCABULARY, template / f"{side}_vocabulary.txt")
    config = {**dataclasses.asdict(CONFIG), "direction": "fr-en"}
    (template / "config.json").write_text(json.dumps(config))
    (template / "test.tsv").write_text(lines("je suis .\tI am ."))
    sentencepiece_template = template.parent / "sentencepiece_run"
    shutil.copytree(template, sentencepiece_template)
    proto = data.train_sentencepiece_model(["je suis .", "I am ."] * 4, 40)
    size = data.build_sentencepiece_tokenizer(proto).vocabulary_size()
    kt.build_seq2seq_transformer(size, size, **CONFIG.model_kwargs()).save(
        sentencepiece_template / "model.keras"
    )
    for side in ("source", "target"):
        (sentencepiece_template / f"{side}_vocabulary.txt").unlink()
        data.save_sentencepiece_model(proto, sentencepiece_template / f"{side}_spm.model")
    config = {**config, "tokenizer": "sentencepiece", "source_vocabulary_size": size,
              "target_vocabulary_size": size}
    (sentencepiece_template / "config.json").write_text(json.dumps(config))
    return model, learned, template, sentencepiece_template


# (entry point / bad input, call(ctx), expected exception or CLI, regex for the message).
# A CLI row's call returns the argv; its regex must match the one stderr line.
INVENTORY = [
    # Layers: sizes, dtypes, ranks and shapes.
    pytest.param(
        lambda c: layers.MultiHeadAttention(num_heads=0, key_dim=4),
        ValueError, r"`num_heads` must be a positive integer\. Received: num_heads=0",
        id="layers.MultiHeadAttention/num_heads=0",
    ),
    pytest.param(
        lambda c: layers.MultiHeadAttention(2, 4)(np.ones((2, 8), "float32")),
        ValueError, r"expects `query` of rank 3, received a tensor of shape \(2, 8\)",
        id="layers.MultiHeadAttention/query-of-rank-2",
    ),
    pytest.param(
        lambda c: layers.MultiHeadAttention(2, 4)(X, np.ones((3, 5, 8), "float32")),
        ValueError, r"same batch size; received shapes \(2, 4, 8\) and \(3, 5, 8\)",
        id="layers.MultiHeadAttention/value-batch-differs-from-query",
    ),
    pytest.param(
        lambda c: layers.MultiHeadAttention(2, 4)(X, X, value_mask=np.ones((2, 5), bool)),
        ValueError, r"`value_mask` of shape \(batch, length\) = \(2, 4\).*shape \(2, 5\)",
        id="layers.MultiHeadAttention/value_mask-shape-mismatch",
    ),
    pytest.param(
        lambda c: built(layers.FeedForward(8), X)(np.ones((2, 4, 6), "float32")),
        ValueError, r"expected axis -1 of input shape to have value 8, but received input with "
        r"shape \(2, 4, 6\)",
        id="layers.FeedForward/hidden-size-differs-from-build",
    ),
    pytest.param(
        lambda c: layers.PositionEmbedding(sequence_length=4)(np.ones((1, 6, 8), "float32")),
        ValueError, r"has 4 learned positions \(`sequence_length`\), but received a sequence of "
        r"length 6",
        id="layers.PositionEmbedding/sequence-longer-than-table",
    ),
    pytest.param(
        lambda c: built(layers.PositionEmbedding(4), X)(np.ones((2, 4, 6), "float32")),
        ValueError, r"last axis of size 8 \(the size it was built with\), received a tensor of "
        r"shape \(2, 4, 6\)",
        id="layers.PositionEmbedding/hidden-size-differs-from-build",
    ),
    pytest.param(
        lambda c: layers.PositionEmbedding(4)(X, start_index=-1),
        ValueError, r"`start_index` >= 0\. Received: start_index=-1",
        id="layers.PositionEmbedding/start_index=-1",
    ),
    pytest.param(
        lambda c: layers.SinusoidalPositionEncoding()(X, start_index=-1),
        ValueError, r"`start_index` >= 0\. Received: start_index=-1",
        id="layers.SinusoidalPositionEncoding/start_index=-1",
    ),
    pytest.param(
        lambda c: layers.TokenAndPositionEmbedding(10, 8, 8)(np.ones((2, 3), "float32")),
        ValueError, r"expects integer token ids .*received dtype .*float32",
        id="layers.TokenAndPositionEmbedding/float-token-ids",
    ),
    pytest.param(
        lambda c: layers.TokenAndPositionEmbedding(10, 8, 8)(np.array([[1, 12]], "int32")),
        ValueError, r"ids must be in \[0, 10\)\. Received a token id 12",
        id="layers.TokenAndPositionEmbedding/token-id>=vocabulary_size",
    ),
    pytest.param(
        lambda c: layers.TokenAndPositionEmbedding(10, 8, 8)(np.array([[1, -1]], "int32")),
        ValueError, r"ids must be in \[0, 10\)\. Received a token id -1",
        id="layers.TokenAndPositionEmbedding/negative-token-id",
    ),
    pytest.param(
        lambda c: built(layers.TokenAndPositionEmbedding(10, 8, 8), IDS)(
            np.ones((1, 3, 6), "float32"), reverse=True
        ),
        ValueError, r"last axis of size 8 \(`embedding_dim`\), received a tensor of shape "
        r"\(1, 3, 6\)",
        id="layers.TokenAndPositionEmbedding/reverse-hidden-size-mismatch",
    ),
    pytest.param(
        lambda c: layers.TransformerEncoderBlock(num_heads=3, intermediate_dim=16)(X),
        ValueError, r"divisible by `num_heads`\. Received hidden size 8 and num_heads=3",
        id="layers.TransformerEncoderBlock/hidden-size-not-divisible-by-heads",
    ),
    pytest.param(
        lambda c: layers.TransformerEncoder(1, num_heads=2, intermediate_dim=16)(
            X, padding_mask=np.ones((2, 5), bool)
        ),
        ValueError, r"`padding_mask` of shape \(batch, length\) = \(2, 4\).*received a mask of "
        r"shape \(2, 5\)",
        id="layers.TransformerEncoder/padding_mask-shape-mismatch",
    ),
    pytest.param(
        lambda c: layers.TransformerEncoder(1, num_heads=2, intermediate_dim=16)(
            X, attention_mask=np.ones((2, 3, 3), bool)
        ),
        ValueError, r"broadcastable to .* = \(2, 4, 4\); received a mask of shape \(2, 3, 3\)",
        id="layers.TransformerEncoder/attention_mask-shape-mismatch",
    ),
    pytest.param(
        lambda c: layers.TransformerDecoderBlock(num_heads=2, intermediate_dim=16)(X),
        ValueError, r"needs `encoder_sequence` or a `cross_attention_cache`; received neither",
        id="layers.TransformerDecoderBlock/no-encoder-sequence",
    ),
    pytest.param(
        lambda c: layers.TransformerDecoder(1, num_heads=2, intermediate_dim=16)(
            X, np.ones((3, 5, 8), "float32")
        ),
        ValueError, r"same batch size; received shapes \(2, 4, 8\) and \(3, 5, 8\)",
        id="layers.TransformerDecoder/encoder-batch-differs-from-decoder",
    ),
    pytest.param(
        lambda c: layers.TransformerDecoder(1, num_heads=2, intermediate_dim=16)(
            X, np.ones((2, 5, 8), "float32"), encoder_padding_mask=np.ones((2, 4), bool)
        ),
        ValueError, r"`encoder_padding_mask` of shape \(batch, length\) = \(2, 5\).*shape \(2, 4\)",
        id="layers.TransformerDecoder/encoder_padding_mask-shape-mismatch",
    ),
    # The model builder and the model.
    pytest.param(
        lambda c: kt.build_seq2seq_transformer(0, 10),
        ValueError, r"`source_vocabulary_size` must be a positive integer\. Received: "
        r"source_vocabulary_size=0",
        id="models.build_seq2seq_transformer/source_vocabulary_size=0",
    ),
    pytest.param(
        lambda c: kt.build_seq2seq_transformer(10, 10, hidden_dim=10, num_heads=3),
        ValueError, r"`hidden_dim` must be divisible by `num_heads`\. Received hidden_dim=10, "
        r"num_heads=3",
        id="models.build_seq2seq_transformer/hidden_dim-not-divisible-by-num_heads",
    ),
    pytest.param(
        lambda c: tiny_model(layer_norm_epsilon=-1.0),
        ValueError, r"`layer_norm_epsilon` must be a number > 0\. Received: layer_norm_epsilon=-1",
        id="models.build_seq2seq_transformer/layer_norm_epsilon=-1",
    ),
    pytest.param(
        lambda c: c.model({data.ENCODER_INPUT: IDS, data.DECODER_INPUT: np.ones((2, 3), "int32")}),
        ValueError, r"same batch size; received shapes \(2, 3, 8\) and \(1, 4, 8\)",
        id="models.Seq2SeqTransformer(inputs)/encoder-and-decoder-batch-differ",
    ),
    pytest.param(
        lambda c: c.model({data.ENCODER_INPUT: IDS}),
        ValueError, r"Missing data for input \"decoder_token_ids\"\. You passed a data dictionary "
        r"with keys \['encoder_token_ids'\]\. Expected",
        id="models.Seq2SeqTransformer(inputs)/missing-decoder-input",
    ),
    pytest.param(
        lambda c: kt.models.Seq2SeqTransformer(
            **tiny_parts(encoder=layers.TransformerEncoderBlock(num_heads=2, intermediate_dim=8))
        ),
        ValueError, r"`encoder` must be a `keras_transformer\.layers\.TransformerEncoder` .*"
        r"Received: encoder=.* of type TransformerEncoderBlock",
        id="models.Seq2SeqTransformer/encoder-is-a-block",
    ),
    pytest.param(
        lambda c: kt.models.Seq2SeqTransformer(
            **tiny_parts(output_layers=[keras.layers.LayerNormalization(axis=1)])
        ),
        ValueError, r"`output_layers\[0\]` must act on each position alone .* Received "
        r"LayerNormalization '\w+' with axis=1",
        id="models.Seq2SeqTransformer/output-layer-mixes-positions",
    ),
    pytest.param(
        lambda c: kt.models.Seq2SeqTransformer(**tiny_parts(), tie_embeddings=False),
        ValueError, r"With `tie_embeddings=False`, `output_layers` must end with a layer giving "
        r"the logits.* Received no output layers",
        id="models.Seq2SeqTransformer/untied-without-output-layers",
    ),
    pytest.param(
        lambda c: kt.models.Seq2SeqTransformer(
            **tiny_parts(output_layers=[keras.layers.Dense(V + 1)]), tie_embeddings=False
        ),
        ValueError, r"The head gives 10 logits per position, but the target vocabulary has 9 ids",
        id="models.Seq2SeqTransformer/head-size-differs-from-vocabulary",
    ),
    pytest.param(
        lambda c: c.model.generate(IDS, **SEARCH, strategy="topk"),
        ValueError, r"`strategy` must be one of \['beam', 'greedy', 'sample'\]\. Received: "
        r"strategy='topk'",
        id="models.Seq2SeqTransformer.generate/unknown-strategy",
    ),
    pytest.param(
        lambda c: c.model.decode_step(
            np.ones((1, 2), "int32"), 0, c.model.init_self_attention_cache(1, 8),
            c.model.compute_cross_attention_cache(c.model.encode(IDS)[0]), IDS != 0,
        ),
        ValueError, r"`decode_step` with 2 hypotheses per row needs a `self_attention_mask`.*"
        r"Received token_ids of shape \(1, 2\)",
        id="models.Seq2SeqTransformer.decode_step/hypotheses-without-self_attention_mask",
    ),
    # Training pieces.
    pytest.param(
        lambda c: training.TransformerSchedule(hidden_dim=512, warmup_steps=0),
        ValueError, r"`warmup_steps` must be a positive integer\. Received: warmup_steps=0",
        id="training.TransformerSchedule/warmup_steps=0",
    ),
    pytest.param(
        lambda c: training.MaskedSparseCategoricalCrossentropy(label_smoothing=1.0),
        ValueError, r"`label_smoothing` must be a float in \[0, 1\)\. Received: "
        r"label_smoothing=1\.0",
        id="training.MaskedSparseCategoricalCrossentropy/label_smoothing=1.0",
    ),
    pytest.param(
        lambda c: training.MaskedSparseCategoricalCrossentropy()(
            np.ones((2, 3), "int32"), np.ones((2, 4, 5), "float32")
        ),
        ValueError, r"labels of shape \(2, 3\) and logits of shape \(2, 4, 5\)",
        id="training.MaskedSparseCategoricalCrossentropy/labels-and-logits-lengths-differ",
    ),
    # Data readers: empty data sets, misaligned parallel files.
    pytest.param(
        lambda c: data.read_parallel(*[c.parallel(["un", "deux"], ["one"]).with_suffix(suffix)
                                       for suffix in (".fr", ".en")]),
        DataError, r"differ in length: .*corpus\.fr has 2 lines, .*corpus\.en has 1",
        id="data.read_parallel/misaligned-line-counts",
    ),
    pytest.param(
        lambda c: data.read_parallel(*[c.parallel(["un", ""], ["one", "two"]).with_suffix(suffix)
                                       for suffix in (".fr", ".en")]),
        DataError, r"corpus\.fr:2: the line is blank but line 2 of .*corpus\.en is not",
        id="data.read_parallel/line-blank-on-one-side",
    ),
    pytest.param(
        lambda c: data.read_tatoeba(c.file("fra.txt", lines("Hello."))),
        DataError, r"fra\.txt:1: expected 'English<TAB>translation.*found 1 tab-separated field",
        id="data.read_tatoeba/line-without-tab",
    ),
    pytest.param(
        lambda c: data.load_corpus(c.file("empty.tsv", "")),
        DataError, r"empty\.tsv: the file is empty; expected sentence pairs",
        id="data.load_corpus/empty-file",
    ),
    pytest.param(
        lambda c: data.load_corpus(c.tmp / "missing"),
        DataError, r"No corpus found at .*missing: looked for a tab-separated file .* and for "
        r"line-aligned files",
        id="data.load_corpus/no-corpus-at-path",
    ),
    pytest.param(
        lambda c: data.split_pairs(["je suis", "I am", "."]),
        ValueError, r"\(source, target\) pairs of two strings\. Received: pairs\[0\]='je suis'",
        id="data.split_pairs/items-not-pairs",
    ),
    pytest.param(
        lambda c: data.split_pairs([("a", "b")] * 3, validation_fraction="0.1"),
        ValueError, r"`validation_fraction` must be a float in \[0, 1\)\. Received: "
        r"validation_fraction='0\.1'",
        id="data.split_pairs/validation_fraction-string",
    ),
    # Tokenizers and vocabularies.
    pytest.param(
        lambda c: data.train_wordpiece_vocabulary([], 100),
        ValueError, r"`texts` must hold at least one sentence\. Received 0 sentences",
        id="data.train_wordpiece_vocabulary/no-texts",
    ),
    pytest.param(
        lambda c: data.train_wordpiece_vocabulary(["je suis"], "100"),
        ValueError, r"`vocabulary_size` must be an integer above the 4 reserved tokens\. "
        r"Received: vocabulary_size='100'",
        id="data.train_wordpiece_vocabulary/vocabulary_size-string",
    ),
    pytest.param(
        lambda c: data.build_tokenizer(["je", "suis"]),
        ValueError, r"must start with the reserved tokens .* Received first tokens: "
        r"\['je', 'suis'\]",
        id="data.build_tokenizer/missing-reserved-tokens",
    ),
    pytest.param(
        lambda c: data.build_tokenizer(VOCABULARY + ["je"]),
        ValueError, r"must hold each token once\. Received 'je' as id 4 and again as id 9",
        id="data.build_tokenizer/duplicate-token",
    ),
    pytest.param(
        lambda c: data.build_tokenizer(VOCABULARY, sequence_length=0),
        ValueError, r"`sequence_length` must be a positive integer, or None for ragged output\. "
        r"Received: sequence_length=0",
        id="data.build_tokenizer/sequence_length=0",
    ),
    pytest.param(
        lambda c: data.load_vocabulary(c.file("vocabulary.txt", lines(*VOCABULARY, "je"))),
        DataError, r"vocabulary\.txt must hold each token once\. Received 'je' as id 4 and again "
        r"as id 9 \(line 10\)",
        id="data.load_vocabulary/duplicate-token",
    ),
    pytest.param(
        lambda c: data.train_sentencepiece_model(["abcdefghijklmnop"], 8),
        ValueError, r"SentencePiece could not learn a vocabulary of 8 tokens from 1 sentences: "
        r".*Vocabulary size is smaller than required_chars",
        id="data.train_sentencepiece_model/vocabulary_size-below-the-characters",
    ),
    pytest.param(
        lambda c: data.load_sentencepiece_model(c.file("source_spm.model", "not a model")),
        DataError, r"source_spm\.model is not a SentencePiece model \(11 bytes that do not parse "
        r"as a model proto\): expected a model written by `save_sentencepiece_model`",
        id="data.load_sentencepiece_model/corrupt-file",
    ),
    pytest.param(
        lambda c: data.load_sentencepiece_model(c.tmp / "missing_spm.model"),
        DataError, r"missing_spm\.model: no such SentencePiece model file",
        id="data.load_sentencepiece_model/missing-file",
    ),
    pytest.param(
        lambda c: data.make_tokenizer("bpe", VOCABULARY),
        ValueError, r"`tokenizer` must be one of \('wordpiece', 'sentencepiece'\)\. Received: "
        r"tokenizer='bpe'",
        id="data.make_tokenizer/unknown-tokenizer",
    ),
    pytest.param(
        lambda c: data.make_tokenizer("sentencepiece", VOCABULARY),
        ValueError, r"A sentencepiece vocabulary must be a serialized SentencePiece model "
        r"\(bytes.*Received: list",
        id="data.make_tokenizer/token-list-for-sentencepiece",
    ),
    pytest.param(
        lambda c: data.detokenize(data.build_tokenizer(VOCABULARY), np.array([[4.0, 5.0]])),
        ValueError, r"`token_ids` must be integer token ids\. Received dtype float64",
        id="data.detokenize/float-ids",
    ),
    # The input pipeline.
    pytest.param(
        lambda c: data.make_dataset([], *[data.build_tokenizer(VOCABULARY)] * 2, batch_size=2,
                                    max_sequence_length=8),
        ValueError, r"`pairs` must hold at least one sentence pair\. Received 0 pairs",
        id="data.make_dataset/no-pairs",
    ),
    pytest.param(
        lambda c: data.make_dataset([("je", "I")], *[data.build_tokenizer(VOCABULARY)] * 2,
                                    batch_size=2, max_sequence_length=0),
        ValueError, r"`max_sequence_length` must be a positive integer\. Received: "
        r"max_sequence_length=0",
        id="data.make_dataset/max_sequence_length=0",
    ),
    pytest.param(
        lambda c: data.make_dataset([("je", "I", "x")], *[data.build_tokenizer(VOCABULARY)] * 2,
                                    batch_size=2, max_sequence_length=8),
        ValueError, r"pairs of two strings\. Received: pairs\[0\]=\('je', 'I', 'x'\)",
        id="data.make_dataset/triples-not-pairs",
    ),
    pytest.param(
        lambda c: data.padding_fraction(tf.data.Dataset.from_tensors((
            {data.ENCODER_INPUT: IDS, data.DECODER_INPUT: IDS}, IDS
        )), max_batches=-1),
        ValueError, r"`max_batches` must be a positive integer, or None for the whole dataset\. "
        r"Received: max_batches=-1",
        id="data.padding_fraction/max_batches=-1",
    ),
    # Decoding.
    pytest.param(
        lambda c: decoding.greedy_search(c.model, IDS[0], **SEARCH),
        ValueError, r"must have shape \(batch, source_length\); received shape \(4,\) \(rank 1\)",
        id="decoding.greedy_search/ids-of-rank-1",
    ),
    pytest.param(
        lambda c: decoding.greedy_search(c.model, np.array([[4, 50, 3]], "int32"), **SEARCH),
        ValueError, r"source token ids in \[0, 9\) .* Received a token id 50",
        id="decoding.greedy_search/id-outside-source-vocabulary",
    ),
    pytest.param(
        lambda c: decoding.greedy_search(c.model, np.zeros((1, 0), "int32"), **SEARCH),
        ValueError, r"at least one token per row .*received shape \(1, 0\)",
        id="decoding.greedy_search/empty-source",
    ),
    pytest.param(
        lambda c: decoding.greedy_search(c.learned_model, np.ones((1, 6), "int32"), **SEARCH),
        ValueError, r"learned source positions for 4 tokens .* at most 4 wide\. Received shape "
        r"\(1, 6\)",
        id="decoding.greedy_search/source-longer-than-learned-positions",
    ),
    pytest.param(
        lambda c: decoding.greedy_search(keras.Sequential([keras.layers.Dense(2)]), IDS, **SEARCH),
        ValueError, r"^Decoding needs a `keras_transformer\.models\.Seq2SeqTransformer`\. "
        r"Received Sequential 'sequential\w*'",
        id="decoding.greedy_search/not-a-seq2seq-model",
    ),
    pytest.param(
        lambda c: decoding.greedy_search(functional_model(), IDS, **SEARCH),
        ValueError, r"^Decoding needs a `keras_transformer\.models\.Seq2SeqTransformer`\. "
        r"Received Functional 'functional\w*'\. A model composed with `keras\.Model\(inputs, "
        r"outputs\)` is not decoded",
        id="decoding.greedy_search/plain-functional-model",
    ),
    pytest.param(
        lambda c: decoding.beam_search(c.model, IDS, **SEARCH, beam_size=V),
        ValueError, r"`beam_size` must be below the target vocabulary size \(9.*Received: "
        r"beam_size=9",
        id="decoding.beam_search/beam_size>=vocabulary",
    ),
    pytest.param(
        lambda c: decoding.sample(c.model, IDS, **SEARCH, top_p=1.5),
        ValueError, r"`top_p` must be a probability in \(0, 1\]\. Received: top_p=1\.5",
        id="decoding.sample/top_p=1.5",
    ),
    # Export.
    pytest.param(
        lambda c: export_saved_model(c.model, VOCABULARY[:-1], VOCABULARY, c.tmp / "out"),
        ValueError, r"`source_vocabulary` has 8 tokens but the model's source embedding has 9 "
        r"ids",
        id="export.export_saved_model/vocabulary-smaller-than-model",
    ),
    pytest.param(
        lambda c: export_saved_model("model.keras", VOCABULARY, VOCABULARY, c.tmp / "out"),
        ValueError, r"^Export needs a `keras_transformer\.models\.Seq2SeqTransformer`\. "
        r"Received the path 'model\.keras'; load it first with `keras\.saving\.load_model",
        id="export.export_saved_model/a-path-instead-of-a-model",
    ),
    pytest.param(
        lambda c: export_saved_model(c.model, VOCABULARY, VOCABULARY, c.tmp / "out",
                                     max_input_length=1),
        ValueError, r"`max_input_length` must be at least 2: .*Received: max_input_length=1",
        id="export.export_saved_model/max_input_length=1",
    ),
    pytest.param(
        lambda c: export_saved_model(c.model, VOCABULARY, VOCABULARY, c.tmp / "out",
                                     target_language="English"),
        ValueError, r"`target_language` must be a lowercase language code .*Received: "
        r"target_language='English'",
        id="export.export_saved_model/target_language=English",
    ),
    pytest.param(
        lambda c: export_tflite(c.learned_model, c.tmp / "m.tflite", max_input_length=10),
        ValueError, r"learned source positions for 4 tokens, so `max_input_length` can be at "
        r"most 4\. Received: max_input_length=10",
        id="export.export_tflite/max_input_length-beyond-learned-positions",
    ),
    pytest.param(
        lambda c: export_tflite(functional_model(), c.tmp / "m.tflite"),
        ValueError, r"^Export needs a `keras_transformer\.models\.Seq2SeqTransformer`\. "
        r"Received Functional 'functional\w*'",
        id="export.export_tflite/plain-functional-model",
    ),
    pytest.param(
        lambda c: export_from_run_dir(c.run(remove=["model.keras"]), "tflite", c.tmp / "m.tflite"),
        FileNotFoundError, r"is incomplete \(has training finished\?\): missing "
        r"\['model\.keras'\]\. A finished run holds \['config\.json'",
        id="export.export_from_run_dir/incomplete-run-directory",
    ),
    pytest.param(
        lambda c: export_from_run_dir(
            c.run(write={"target_vocabulary.txt": lines(*VOCABULARY[:-1])}), "tflite",
            c.tmp / "m.tflite",
        ),
        ValueError, r"target vocabulary sizes .* disagree: target_vocabulary\.txt has 8 tokens, "
        r"config\.json says 9 and the model's embedding has 9",
        id="export.export_from_run_dir/vocabulary-does-not-match-model",
    ),
    pytest.param(
        lambda c: export_from_run_dir(
            c.run(sentencepiece=True, remove=["source_spm.model"]), "saved_model", c.tmp / "out"
        ),
        FileNotFoundError, r"is incomplete: missing \['source_spm\.model'\]\. A finished run "
        r"holds \['config\.json', 'source_spm\.model', 'target_spm\.model', 'model\.keras'\]",
        id="export.export_from_run_dir/missing-sentencepiece-model",
    ),
    pytest.param(
        lambda c: export_from_run_dir(
            c.run(sentencepiece=True, write={"target_spm.model": "not a model"}), "saved_model",
            c.tmp / "out",
        ),
        DataError, r"target_spm\.model is not a SentencePiece model \(11 bytes",
        id="export.export_from_run_dir/corrupt-sentencepiece-model",
    ),
    pytest.param(
        lambda c: export_from_run_dir(c.run(config={"tokenizer": "bpe"}), "tflite",
                                      c.tmp / "m.tflite"),
        ValueError, r"config\.json: `tokenizer` must be one of \['sentencepiece', 'wordpiece'\]\. "
        r"Received: tokenizer='bpe'",
        id="export.export_from_run_dir/unknown-tokenizer",
    ),
    pytest.param(
        lambda c: export_from_run_dir(c.run(drop=["direction"]), "tflite", c.tmp / "m.tflite"),
        ValueError, r"config\.json: expected a JSON object with a \"direction\" key",
        id="export.export_from_run_dir/config-without-direction",
    ),
    pytest.param(
        lambda c: export_from_run_dir(
            c.run(write={"model.keras": "not a zip"}), "tflite", c.tmp / "m.tflite"
        ),
        ValueError, r"model\.keras is not a \.keras model archive \(a zip file of 9 bytes is "
        r"expected\)",
        id="export.export_from_run_dir/corrupt-model.keras",
    ),
    # Translation: configs, run directories, the translator, evaluation.
    pytest.param(
        lambda c: resolve_config(str(c.file("config.json", '{"hiden_dim": 64}'))),
        ValueError, r"unknown config keys \['hiden_dim'\]\. Known keys: \[.*'hidden_dim'",
        id="translation.resolve_config/unknown-key",
    ),
    pytest.param(
        lambda c: resolve_config(str(c.file("config.json", '{"hidden_dim": 0}'))),
        ValueError, r"config\.json: `hidden_dim` must be a positive integer\. Received: "
        r"hidden_dim=0",
        id="translation.resolve_config/hidden_dim=0",
    ),
    pytest.param(
        lambda c: resolve_config(str(c.file("config.json", '{"dropout": "none"}'))),
        ValueError, r"config\.json: `dropout` must be a float in \[0, 1\)\. Received: "
        r"dropout='none'",
        id="translation.resolve_config/dropout-string",
    ),
    pytest.param(
        lambda c: resolve_config(str(c.file("config.json", '{"tokenizer": "bpe"}'))),
        ValueError, r"config\.json: `tokenizer` must be one of \['sentencepiece', 'wordpiece'\]\. "
        r"Received: tokenizer='bpe'",
        id="translation.resolve_config/unknown-tokenizer",
    ),
    pytest.param(
        lambda c: train("tiny", c.tmp / "out", distribution="ring"),
        ValueError, r"`distribution` must be one of \['mirrored', 'multi-worker', 'none'\]\. "
        r"Received: distribution='ring'",
        id="translation.train/unknown-distribution",
    ),
    pytest.param(
        lambda c: train("tiny", c.tmp / "out", distribution="multi-worker"),
        ValueError, r"--distribution multi-worker needs TF_CONFIG, which is not set; expected "
        r'TF_CONFIG=\{"cluster": \{"worker": \["host:port", \.\.\.\]\}, "task": ',
        id="translation.train/multi-worker-without-tf_config",
    ),
    pytest.param(
        lambda c: Translator.from_run_dir(c.tmp / "nowhere"),
        FileNotFoundError, r"nowhere' does not exist\. Expected a directory written by "
        r"`keras-transformer train",
        id="translation.Translator.from_run_dir/missing-run-directory",
    ),
    pytest.param(
        lambda c: Translator.from_run_dir(c.run(remove=["target_vocabulary.txt"])),
        FileNotFoundError, r"is incomplete: missing \['target_vocabulary\.txt'\]\. A finished run "
        r"holds",
        id="translation.Translator.from_run_dir/incomplete-run-directory",
    ),
    pytest.param(
        lambda c: Translator.from_run_dir(c.run(sentencepiece=True, remove=["target_spm.model"])),
        FileNotFoundError, r"is incomplete: missing \['target_spm\.model'\]\. A finished run "
        r"holds \['config\.json', 'source_spm\.model', 'target_spm\.model', 'model\.keras'\]",
        id="translation.Translator.from_run_dir/missing-sentencepiece-model",
    ),
    pytest.param(
        lambda c: Translator.from_run_dir(
            c.run(sentencepiece=True, write={"source_spm.model": lines(*VOCABULARY)})
        ),
        DataError, r"source_spm\.model is not a SentencePiece model \(41 bytes that do not parse",
        id="translation.Translator.from_run_dir/corrupt-sentencepiece-model",
    ),
    pytest.param(
        lambda c: Translator.from_run_dir(c.file("config.json", "{}")),
        FileNotFoundError, r"config\.json' is a file, not a directory\. Expected a directory",
        id="translation.Translator.from_run_dir/run-directory-is-a-file",
    ),
    pytest.param(
        lambda c: Translator.from_run_dir(
            c.run(write={"source_vocabulary.txt": lines(*VOCABULARY, "extra")})
        ),
        ValueError, r"source vocabulary sizes of .* disagree: source_vocabulary\.txt has 10 "
        r"tokens, config\.json says 9 and the model's embedding has 9",
        id="translation.Translator.from_run_dir/vocabulary-does-not-match-model",
    ),
    pytest.param(
        lambda c: Translator.from_run_dir(c.run(config={"colour": "blue"})),
        ValueError, r"unknown config keys \['colour'\]\. Known keys",
        id="translation.Translator.from_run_dir/unknown-config-key",
    ),
    pytest.param(
        lambda c: Translator.from_run_dir(c.run(write={"model.keras": "not a zip"})),
        ValueError, r"model\.keras is not a \.keras model archive \(a zip file of 9 bytes is "
        r"expected\)",
        id="translation.Translator.from_run_dir/corrupt-model.keras",
    ),
    pytest.param(
        lambda c: Translator(functional_model(), CONFIG, VOCABULARY, VOCABULARY),
        ValueError, r"^Translator needs a `keras_transformer\.models\.Seq2SeqTransformer`\. "
        r"Received Functional 'functional\w*'",
        id="translation.Translator/plain-functional-model",
    ),
    pytest.param(
        lambda c: Translator(c.model, CONFIG, VOCABULARY, VOCABULARY).translate(["je", 5]),
        ValueError, r"`texts` must hold sentences as strings\. Received: texts\[1\]=5 of type int",
        id="translation.Translator.translate/non-string-text",
    ),
    pytest.param(
        lambda c: evaluate(c.run(write={"test.tsv": lines("je suis .")})),
        DataError, r"test\.tsv:1: expected 'source<TAB>reference', found 1 tab-separated field",
        id="translation.evaluate/malformed-test-split",
    ),
    pytest.param(
        lambda c: score(["je", "suis"], ["I"], ["I", "am"]),
        ValueError, r"must be non-empty and aligned .* Received lengths \{'sources': 2, "
        r"'references': 1, 'hypotheses': 2\}",
        id="translation.score/misaligned-lists",
    ),
    pytest.param(
        lambda c: kt.convert.from_marian(c.marian(remove=["target.spm", "vocab.json"])),
        DataError, r"Marian checkpoint directory '.*checkpoint' lacks \['target\.spm', "
        r"'vocab\.json'\]; expected \['config\.json', 'model\.safetensors', 'source\.spm', "
        r"'target\.spm', 'vocab\.json'\]",
        id="convert.from_marian/missing-checkpoint-files",
    ),
    pytest.param(
        lambda c: kt.convert.from_marian(c.marian(config={"model_type": "bart"})),
        DataError, r"config\.json: \"model_type\" is 'bart'; expected \"marian\"",
        id="convert.from_marian/config-not-marian",
    ),
    pytest.param(
        lambda c: kt.convert.from_marian(c.marian(config={"d_model": 32})),
        DataError, r"model\.safetensors: tensor 'model\.shared\.weight' has shape \(146, 16\), "
        r"but config\.json implies \(146, 32\); the weights and config\.json disagree",
        id="convert.from_marian/tensor-shape-disagrees-with-config",
    ),
    # The command line: exit code 2 and one line on stderr.
    pytest.param(
        lambda c: ["translate", "--run-dir", c.tmp / "nowhere", "je suis"],
        CLI, r"translate: error: Run directory .*nowhere' does not exist\. Expected a directory",
        id="cli.translate/missing-run-directory",
    ),
    pytest.param(
        lambda c: ["translate", "--run-dir",
                   c.run(write={"target_vocabulary.txt": lines(*VOCABULARY[:-1])}), "je suis"],
        CLI, r"translate: error: The target vocabulary sizes of .* disagree: "
        r"target_vocabulary\.txt has 8 tokens, config\.json says 9",
        id="cli.translate/vocabulary-does-not-match-model",
    ),
    pytest.param(
        lambda c: ["translate", "--run-dir",
                   c.run(sentencepiece=True, write={"target_spm.model": "not a model"}), "je"],
        CLI, r"translate: error: .*target_spm\.model is not a SentencePiece model \(11 bytes",
        id="cli.translate/corrupt-sentencepiece-model",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out",
                   "--config", c.file("config.json", '{"recipe": "tiny", "tokenizer": "spm"}')],
        CLI, r"train: error: .*config\.json: `tokenizer` must be one of \['sentencepiece', "
        r"'wordpiece'\]\. Received: tokenizer='spm'",
        id="cli.train/unknown-tokenizer",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out",
                   "--config", c.file("config.json", '{"recipe": "tiny", "hiden_dim": 8}')],
        CLI, r"train: error: .*config\.json: unknown config keys \['hiden_dim'\]\. Known keys",
        id="cli.train/unknown-config-key",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out",
                   "--config", c.file("config.json", '{"num_heads": 3}')],
        CLI, r"train: error: .*config\.json: `hidden_dim` must be divisible by `num_heads`\. "
        r"Received hidden_dim=256, num_heads=3",
        id="cli.train/hidden_dim-not-divisible-by-num_heads",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out", "--config", "tiny",
                   "--data", c.parallel(["un", "deux"], ["one"])],
        CLI, r"train: error: Line-aligned files differ in length: .*corpus\.fr has 2 lines, "
        r".*corpus\.en has 1",
        id="cli.train/misaligned-parallel-files",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out", "--config", "tiny",
                   "--data", c.file("empty.tsv", "")],
        CLI, r"train: error: .*empty\.tsv: the file is empty; expected sentence pairs",
        id="cli.train/empty-corpus",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out", "--config", "tiny",
                   "--data", c.file("corpus.tsv", "I am.\tJe suis.\n"),
                   "--validation-data", c.tmp / "missing"],
        CLI, r"train: error: validation_data \(--validation-data\): No corpus found at "
        r".*missing: looked for",
        id="cli.train/missing-validation-data",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out", "--config", "tiny",
                   "--data", c.file("corpus.tsv", "I am.\tJe suis.\n"),
                   "--validation-data", c.file("empty.tsv", "")],
        CLI, r"train: error: validation_data \(--validation-data\): .*empty\.tsv: the file "
        r"is empty; expected sentence pairs",
        id="cli.train/empty-validation-file",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out", "--config", "tiny",
                   "--batch-tokens", "16"],
        CLI, r"train: error: `batch_tokens` must hold at least one example of "
        r"`max_sequence_length` \(32\) tokens\. Received: batch_tokens=16",
        id="cli.train/batch-tokens-below-max_sequence_length",
    ),
    pytest.param(
        lambda c: ["train", "--output-dir", c.tmp / "out", "--config", "tiny",
                   "--init-from", c.run()],
        CLI, r"train: error: --init-from .*run: fine-tuning needs the model sizes and "
        r"tokenizer of that run; received num_layers=1 there, 2 here; hidden_dim=8 there, "
        r"128 here",
        id="cli.train/init-from-a-run-of-other-model-sizes",
    ),
    pytest.param(
        lambda c: ["translate", "--run-dir", c.run(), "--n-best", "3", "--beam-size", "2",
                   "je suis"],
        CLI, r"translate: error: `n_best` must be at most the beam size, as the search "
        r"keeps 2 hypotheses\. Received n_best=3",
        id="cli.translate/n-best-above-the-beam-size",
    ),
    pytest.param(
        lambda c: ["average", "--run-dir", c.run(), "--last", "2"],
        CLI, r"average: error: .*checkpoints holds 0 epoch checkpoint\(s\); averaging the "
        r"last 2 needs at least 2",
        id="cli.average/fewer-checkpoints-than-last",
    ),
    pytest.param(
        lambda c: ["evaluate", "--run-dir", c.run(), "--data", c.tmp / "missing"],
        CLI, r"evaluate: error: No corpus found at .*missing: looked for",
        id="cli.evaluate/no-corpus-at-data-path",
    ),
    pytest.param(
        lambda c: ["export", "--run-dir",
                   c.run(write={"source_vocabulary.txt": lines(*VOCABULARY, "extra")}),
                   "--format", "tflite", "--output", c.tmp / "m.tflite"],
        CLI, r"export: error: The source vocabulary sizes of .* disagree: "
        r"source_vocabulary\.txt has 10 tokens",
        id="cli.export/vocabulary-does-not-match-model",
    ),
    pytest.param(
        lambda c: ["export", "--run-dir", c.run(), "--format", "tflite",
                   "--output", c.file("m.tflite", "old")],
        CLI, r"export: error: .*m\.tflite already exists\. Choose a new output path",
        id="cli.export/output-exists",
    ),
    pytest.param(
        lambda c: ["import-marian", c.marian(remove=["model.safetensors"]),
                   "--output-dir", c.tmp / "run"],
        CLI, r"import-marian: error: Marian checkpoint directory '.*checkpoint' lacks "
        r"\['model\.safetensors'\]",
        id="cli.import-marian/missing-weights-file",
    ),
    pytest.param(
        lambda c: ["attention", "--run-dir", c.run(), "  ", "--output", c.tmp / "a.png"],
        CLI, r"attention: error: `text` is empty; the attention needs a sentence to translate",
        id="cli.attention/empty-text",
    ),
]


@pytest.mark.parametrize("call, expected, message", INVENTORY)
def test_bad_input_gets_a_clear_error(call, expected, message, shared, tmp_path, capsys):
    context = Context(shared, tmp_path)
    if expected is CLI:
        code = main([str(argument) for argument in call(context)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert re.search(message, err), err
        return
    with pytest.raises(expected, match=message):
        call(context)


# Rows of docs/bad_input.md that other tests check (the NaN loss: tests/training).
DOCUMENTED_ELSEWHERE = {
    "training.maskedsparsecategoricalcrossentropy/a-non-padding-label-outside-[0,-v)",
}


def test_docs_list_exactly_the_inventory():
    """docs/bad_input.md has one row per case here, so the count the docs show
    cannot go stale; a row's id is its entry point and its bad input, in words."""
    docs = Path(__file__).resolve().parent.parent / "docs" / "bad_input.md"
    rows = set()
    for line in docs.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            entry, bad_input = [cell.strip() for cell in line.strip("|").split("|")[:2]]
            words = bad_input.replace("`", "").lower().replace(" ", "-")
            rows.add(f"{entry.strip('`')}/{words}".lower())
    ids = {param.id.lower() for param in INVENTORY}
    assert len(ids) == len(INVENTORY)
    assert rows - DOCUMENTED_ELSEWHERE == ids
