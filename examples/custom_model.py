"""Compose a custom Transformer from the layers and decode it with greedy search.

A pre-norm variant with learned positions and a tied output projection,
composed by hand from `TokenAndPositionEmbedding`, `TransformerEncoder` and
`TransformerDecoder` into a `Seq2SeqTransformer`, trained briefly on
generated French-English pairs. A `Seq2SeqTransformer` owns its parts and
decodes with them step by step (`generate`, or the searches of
`keras_transformer.decoding`); a model wired with `keras.Model(inputs,
outputs)` trains the same but is not decoded.

    python examples/custom_model.py
"""

import keras
import numpy as np

from keras_transformer.data import (
    END_ID,
    START_ID,
    build_tokenizer,
    detokenize,
    generate_pairs,
    make_dataset,
    train_wordpiece_vocabulary,
)
from keras_transformer.layers import (
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
)
from keras_transformer.models import Seq2SeqTransformer
from keras_transformer.training import (
    MaskedSparseCategoricalCrossentropy,
    transformer_adam,
)

HIDDEN_DIM, MAX_LENGTH = 64, 24


def build_pre_norm_model(
    source_vocabulary_size: int, target_vocabulary_size: int
) -> Seq2SeqTransformer:
    """Encoder-decoder with pre-norm blocks, learned positions and tied logits.

    The model maps `{"encoder_token_ids": (B, S), "decoder_token_ids": (B, T)}`
    to (B, T, V) logits: target embedding -> decoder (attending to the
    encoded source) -> the transposed target embedding (`tie_embeddings`).
    """
    blocks = {"num_heads": 4, "intermediate_dim": 256, "dropout": 0.0, "normalize_first": True}
    embedding = {"sequence_length": MAX_LENGTH, "embedding_dim": HIDDEN_DIM,
                 "position_encoding": "learned"}
    return Seq2SeqTransformer(
        encoder_embedding=TokenAndPositionEmbedding(source_vocabulary_size, **embedding),
        encoder=TransformerEncoder(2, **blocks),
        decoder_embedding=TokenAndPositionEmbedding(target_vocabulary_size, **embedding),
        decoder=TransformerDecoder(2, **blocks),
        tie_embeddings=True,
        name="pre_norm_transformer",
    )


def main() -> None:
    keras.utils.set_random_seed(0)
    pairs = generate_pairs(num_pairs=8000, seed=0)
    train_pairs, test_pairs = pairs[:-5], pairs[-5:]
    source_vocabulary = train_wordpiece_vocabulary([s for s, _ in train_pairs], 1000)
    target_vocabulary = train_wordpiece_vocabulary([t for _, t in train_pairs], 1000)
    source_tokenizer = build_tokenizer(source_vocabulary)
    target_tokenizer = build_tokenizer(target_vocabulary)
    dataset = make_dataset(train_pairs, source_tokenizer, target_tokenizer, batch_size=64,
                           max_sequence_length=MAX_LENGTH, shuffle=True, seed=0)

    model = build_pre_norm_model(len(source_vocabulary), len(target_vocabulary))
    model.compile(
        optimizer=transformer_adam(HIDDEN_DIM, warmup_steps=200, scale=2.0),
        loss=MaskedSparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    model.fit(dataset, epochs=3, verbose=2)

    sources = [source for source, _ in test_pairs]
    encoder_token_ids = np.zeros((len(sources), MAX_LENGTH), "int32")  # (B, S)
    for row, ids in enumerate(source_tokenizer(sources)):
        ids = list(ids[: MAX_LENGTH - 1]) + [END_ID]
        encoder_token_ids[row, : len(ids)] = ids
    tokens, scores = model.generate(encoder_token_ids, max_length=MAX_LENGTH,
                                    start_token_id=START_ID, end_token_id=END_ID)
    translations = detokenize(target_tokenizer, tokens)
    for (source, reference), translation, score in zip(
        test_pairs, translations, np.asarray(scores)
    ):
        print(f"{source} -> {translation}    [log P = {score:.2f}; reference: {reference}]")


if __name__ == "__main__":
    main()
