"""Compose a custom Transformer from the layers and decode it with greedy search.

A pre-norm variant with learned positions and a tied output projection, built
by hand from `TokenAndPositionEmbedding`, `TransformerEncoder` and
`TransformerDecoder`, trained briefly on generated French-English pairs.
The searches in `keras_transformer.decoding` find a model's parts by layer
name, so naming the layers "encoder_embedding", "encoder",
"decoder_embedding" and "decoder" is all a custom model needs to use them.

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
from keras_transformer.decoding import greedy_search
from keras_transformer.layers import (
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
)
from keras_transformer.training import (
    MaskedAccuracy,
    MaskedSparseCategoricalCrossentropy,
    transformer_adam,
)

HIDDEN_DIM, MAX_LENGTH = 64, 24


def build_pre_norm_model(source_vocabulary_size: int, target_vocabulary_size: int) -> keras.Model:
    """Encoder-decoder with pre-norm blocks, learned positions and tied logits."""
    blocks = {"num_heads": 4, "intermediate_dim": 256, "dropout": 0.0, "normalize_first": True}
    embedding = {"sequence_length": MAX_LENGTH, "embedding_dim": HIDDEN_DIM,
                 "position_encoding": "learned"}
    source_ids = keras.Input((None,), dtype="int32", name="encoder_token_ids")  # (B, S)
    target_ids = keras.Input((None,), dtype="int32", name="decoder_token_ids")  # (B, T)
    x = TokenAndPositionEmbedding(source_vocabulary_size, name="encoder_embedding", **embedding)(
        source_ids
    )  # (B, S, D), masked
    x = TransformerEncoder(2, name="encoder", **blocks)(x)  # (B, S, D)
    target_embedding = TokenAndPositionEmbedding(
        target_vocabulary_size, name="decoder_embedding", **embedding
    )
    y = target_embedding(target_ids)  # (B, T, D), masked
    y = TransformerDecoder(2, name="decoder", **blocks)(y, x)  # (B, T, D)
    logits = target_embedding(y, reverse=True)  # (B, T, V), the tied projection
    return keras.Model(
        {"encoder_token_ids": source_ids, "decoder_token_ids": target_ids}, logits
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
        metrics=[MaskedAccuracy()],
    )
    model.fit(dataset, epochs=3, verbose=2)

    sources = [source for source, _ in test_pairs]
    encoder_token_ids = np.zeros((len(sources), MAX_LENGTH), "int32")  # (B, S)
    for row, ids in enumerate(source_tokenizer(sources)):
        ids = list(ids[: MAX_LENGTH - 1]) + [END_ID]
        encoder_token_ids[row, : len(ids)] = ids
    tokens = greedy_search(model, encoder_token_ids, start_token_id=START_ID,
                           end_token_id=END_ID, max_length=MAX_LENGTH)
    for (source, reference), translation in zip(test_pairs, detokenize(target_tokenizer, tokens)):
        print(f"{source} -> {translation}    [reference: {reference}]")


if __name__ == "__main__":
    main()
