"""Tiny random models and uncached reference decoders for the decoding tests.

The references call the full model on the whole prefix at every step (no
cache, no XLA), with the semantics the fast searches document: the padding
id 0 is never generated, a row or hypothesis ends with its end token and is
padded with 0 after it.
"""

import keras
import numpy as np

from keras_transformer import build_seq2seq_transformer
from keras_transformer.models import DECODER_INPUT, ENCODER_INPUT

VOCABULARY_SIZE = 30
START, END = 1, 2


def build_model(
    tie_embeddings: bool = True,
    normalize_first: bool = False,
    position_encoding: str = "sinusoidal",
    seed: int = 0,
    num_layers: int = 2,
) -> keras.Model:
    """A tiny random model. The decoder's output projections are scaled up so
    that the next token depends on the source and the prefix, not only on
    the previous token (a fresh random model mostly repeats one token)."""
    keras.utils.set_random_seed(seed)
    model = build_seq2seq_transformer(
        VOCABULARY_SIZE,
        VOCABULARY_SIZE,
        num_layers=num_layers,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        dropout=0.0,
        max_sequence_length=24,
        normalize_first=normalize_first,
        tie_embeddings=tie_embeddings,
        position_encoding=position_encoding,
    )
    for weight in model.weights:
        if weight.path.startswith("decoder/") and weight.path.endswith("output/kernel"):
            weight.assign(weight.numpy() * 3.0)
    return model


def mixed_length_source(batch_size: int = 4, length: int = 7, seed: int = 0) -> np.ndarray:
    """int32 (B, S) source ids with right padding: row i has `length - i` tokens."""
    rng = np.random.default_rng(seed)
    source = rng.integers(3, VOCABULARY_SIZE, (batch_size, length)).astype("int32")
    for row in range(batch_size):
        source[row, max(length - row, 1):] = 0
    return source


def log_probs(model: keras.Model, source: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """float64 (B, T, V) log-probabilities of the token after each position
    of `prefix` (B, T), from one full forward pass."""
    logits = np.asarray(model({ENCODER_INPUT: source, DECODER_INPUT: prefix}), "float64")
    logits -= logits.max(axis=-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def next_token_log_probs(model: keras.Model, source: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """float64 (B, V) log-probabilities of the token after `prefix` (B, T)."""
    return log_probs(model, source, prefix)[:, -1]


def uncached_greedy(model, source, *, end_token_id, max_length):
    """Greedy search that runs the full model on the prefix at every step."""
    batch_size = len(source)
    prefix = np.full((batch_size, 1), START, "int32")
    tokens = np.zeros((batch_size, max_length), "int32")
    finished = np.zeros(batch_size, bool)
    for step in range(max_length):
        log_probs = next_token_log_probs(model, source, prefix)
        log_probs[:, 0] = -np.inf
        next_ids = np.where(finished, 0, log_probs.argmax(axis=-1)).astype("int32")
        tokens[:, step] = next_ids
        finished |= next_ids == end_token_id
        if finished.all():
            return tokens[:, : step + 1]
        prefix = np.concatenate([prefix, next_ids[:, None]], axis=1)
    return tokens


def length_penalty_divisor(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


def uncached_beam_search(model, source_row, *, end_token_id, max_length, beam_size, alpha):
    """Beam search for one source row (S,), hypothesis by hypothesis.

    Returns:
        The `beam_size` hypotheses, best first, as (tokens, score) pairs;
        tokens include the end token.
    """
    beams = [([], 0.0, False)]  # (tokens, log-probability, finished)
    for step in range(max_length):
        live = [beam for beam in beams if not beam[2]]
        if not live:
            break
        prefix = np.array([[START] + tokens for tokens, _, _ in live], "int32")
        log_probs = next_token_log_probs(model, np.repeat(source_row[None], len(live), 0), prefix)
        candidates = []
        for tokens, log_prob, finished in beams:
            if finished:
                candidates.append((tokens, log_prob, True))
                continue
            row = log_probs[live.index((tokens, log_prob, finished))]
            for token in range(1, VOCABULARY_SIZE):
                candidates.append((tokens + [token], log_prob + row[token], token == end_token_id))
        beams = sorted(
            candidates,
            key=lambda beam: -beam[1] / length_penalty_divisor(len(beam[0]), alpha),
        )[:beam_size]
    return [
        (tokens, log_prob / length_penalty_divisor(len(tokens), alpha))
        for tokens, log_prob, _ in beams
    ]


def pad_rows(rows, length: int) -> np.ndarray:
    """Right-pads int sequences with 0 to an int32 (N, length) array."""
    padded = np.zeros((len(rows), length), "int32")
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
    return padded
