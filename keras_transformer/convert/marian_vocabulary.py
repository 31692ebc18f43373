"""Marian's joint vocabulary as the library's ids, and SentencePiece models that give them.

A Hugging Face Marian checkpoint tokenizes in two steps: source.spm (or
target.spm) splits text into pieces, and vocab.json maps each piece to a row
of the shared embedding ("</s>" 0, "<unk>" 1, "<pad>" usually last, pieces
the vocabulary lacks -> "<unk>"). The library instead has one SentencePiece
model per side whose piece ids are the vocabulary ids, with the reserved ids
"[PAD]" 0, "[UNK]" 1, "[START]" 2, "[END]" 3, and masks id 0 as padding
everywhere. `VocabularyMap` renumbers Marian's V ids into V + 1 of ours:

    ours 0 [PAD]    = Marian's pad row: masked, never generated (the
                      searches exclude id 0, as `generate` excludes pad
                      through `bad_words_ids`); its logit stays, so the
                      softmax normalizes over the same V logits as Marian.
    ours 1 [UNK]    = Marian's "<unk>".
    ours 2 [START]  = a copy of Marian's decoder start row (the pad row):
                      embedded as Marian embeds it, but not masked. Its
                      output bias is `START_LOGIT_BIAS`, so it is never
                      generated and adds exp(-1e9) = 0 to the softmax: the
                      duplicated row does not change the normalization.
    ours 3 [END]    = Marian's "</s>".
    ours 4 ...      = Marian's other ids, in their order.

`sentencepiece_model` writes, for each side, a copy of the checkpoint's
SentencePiece model whose pieces are exactly the V + 1 tokens in our id
order: the side's own pieces keep their scores and types, so segmentation is
unchanged; the other side's pieces are UNUSED, which SentencePiece never
segments into. The run directory is then a normal "sentencepiece" run, and
the in-graph tokenizer of an exported SavedModel needs no change.

Why not make the padding id a model setting instead: id 0 is padding in
every mask, search, loss and export signature of the library; remapping
once at import keeps all of them unchanged, and the imported model runs
the same code as a trained one.
"""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sentencepiece import sentencepiece_model_pb2

from keras_transformer.data import DataError
from keras_transformer.data.tokenizers import END_ID, PAD_ID, RESERVED_TOKENS, START_ID, UNK_ID

# The output bias of [START]: its logit is -1e9 below the others, so it is
# never generated and its probability is exactly 0 in float32.
START_LOGIT_BIAS = -1e9

_PIECE = sentencepiece_model_pb2.ModelProto.SentencePiece
_SEGMENTING_TYPES = (_PIECE.NORMAL, _PIECE.USER_DEFINED, _PIECE.BYTE)


class VocabularyMap(NamedTuple):
    """Marian's V ids as the library's V + 1.

    Attributes:
        tokens: the V + 1 tokens in our id order (`RESERVED_TOKENS` first).
        marian_rows: int64 (V + 1,), the Marian row of each of our ids
            (our [START] -> the decoder start row).
        marian_to_ours: int64 (V,), our id of each Marian id.
    """

    tokens: list[str]
    marian_rows: np.ndarray
    marian_to_ours: np.ndarray

    @property
    def size(self) -> int:
        return len(self.tokens)


def read_vocabulary(path: Path, vocabulary_size: int) -> list[str]:
    """vocab.json as a list of V tokens in id order; a DataError unless its
    ids are exactly 0 ... V - 1."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a valid JSON vocabulary ({error}).") from None
    if not isinstance(values, dict) or not all(
        isinstance(index, int) and not isinstance(index, bool) for index in values.values()
    ):
        raise DataError(f"{path}: expected a JSON object mapping tokens to integer ids.")
    tokens = [None] * vocabulary_size
    for token, index in values.items():
        if not 0 <= index < vocabulary_size or tokens[index] is not None:
            raise DataError(
                f"{path}: expected each id 0 to {vocabulary_size - 1} (config.json's "
                f"vocab_size) once; received {token!r}: {index}."
            )
        tokens[index] = token
    missing = [index for index, token in enumerate(tokens) if token is None]
    if missing:
        raise DataError(
            f"{path}: has {len(values)} tokens, config.json's vocab_size is "
            f"{vocabulary_size}; ids {missing[:5]} have no token."
        )
    return tokens


def vocabulary_map(
    marian_tokens: list[str], unk_token_id: int, eos_token_id: int, pad_token_id: int,
    decoder_start_token_id: int,
) -> VocabularyMap:
    """Renumbers Marian's ids as the module docstring describes."""
    special = {pad_token_id: PAD_ID, unk_token_id: UNK_ID, eos_token_id: END_ID}
    if len(special) != 3:
        raise DataError(
            "config.json: expected distinct pad, unk and eos token ids; received "
            f"pad_token_id={pad_token_id}, unk id {unk_token_id}, eos_token_id={eos_token_id}."
        )
    others = [index for index in range(len(marian_tokens)) if index not in special]
    clashes = sorted({marian_tokens[index] for index in others} & set(RESERVED_TOKENS))
    if clashes:
        raise DataError(
            f"vocab.json: has the tokens {clashes}, which the library reserves for its "
            f"special ids {RESERVED_TOKENS}; expected none of them."
        )
    marian_rows = [pad_token_id, unk_token_id, decoder_start_token_id, eos_token_id, *others]
    marian_to_ours = np.empty(len(marian_tokens), "int64")
    for ours, marian in enumerate(marian_rows):
        if ours != START_ID:
            marian_to_ours[marian] = ours
    tokens = [*RESERVED_TOKENS, *(marian_tokens[index] for index in others)]
    return VocabularyMap(tokens, np.array(marian_rows, "int64"), marian_to_ours)


def sentencepiece_model(path: Path, vocabulary: VocabularyMap) -> bytes:
    """The checkpoint's SentencePiece model at `path`, renumbered to our ids.

    Args:
        path: source.spm or target.spm.
        vocabulary: from `vocabulary_map`.

    Returns:
        The serialized model: piece i is `vocabulary.tokens[i]`; ids 0 to 3
        are the reserved control and unknown pieces; the pieces of `path`
        keep their score and type; the other tokens are UNUSED.

    Raises:
        DataError: `path` is not a SentencePiece model, or it has a piece
            vocab.json lacks (MarianTokenizer would give it "<unk>", which a
            SentencePiece model cannot express).
    """
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception:  # protobuf's DecodeError, whose module varies by version
        raise DataError(f"{path}: not a SentencePiece model (the bytes do not parse).") from None
    if not proto.pieces:
        raise DataError(f"{path}: not a SentencePiece model (it has no pieces).")
    own = {piece.piece: piece for piece in proto.pieces if piece.type in _SEGMENTING_TYPES}
    known = set(vocabulary.tokens)
    unknown = sorted(piece for piece in own if piece not in known)
    if unknown:
        raise DataError(
            f"{path}: {len(unknown)} of its pieces are not in vocab.json ({unknown[:5]}); "
            "expected the joint vocabulary of both SentencePiece models, as OPUS-MT "
            "checkpoints have."
        )
    lowest = min((piece.score for piece in own.values()), default=0.0)
    remapped = sentencepiece_model_pb2.ModelProto()
    remapped.trainer_spec.CopyFrom(proto.trainer_spec)
    remapped.normalizer_spec.CopyFrom(proto.normalizer_spec)
    if proto.HasField("denormalizer_spec"):
        remapped.denormalizer_spec.CopyFrom(proto.denormalizer_spec)
    reserved_types = {PAD_ID: _PIECE.CONTROL, UNK_ID: _PIECE.UNKNOWN,
                      START_ID: _PIECE.CONTROL, END_ID: _PIECE.CONTROL}
    for index, token in enumerate(vocabulary.tokens):
        piece = remapped.pieces.add(piece=token, score=0.0)
        if index in reserved_types:
            piece.type = reserved_types[index]
        elif token in own:
            piece.score, piece.type = own[token].score, own[token].type
        else:
            piece.score, piece.type = lowest - 10.0, _PIECE.UNUSED
    spec = remapped.trainer_spec
    spec.vocab_size = vocabulary.size
    spec.pad_id, spec.unk_id, spec.bos_id, spec.eos_id = PAD_ID, UNK_ID, START_ID, END_ID
    spec.pad_piece, spec.unk_piece, spec.bos_piece, spec.eos_piece = RESERVED_TOKENS
    spec.unk_surface = RESERVED_TOKENS[UNK_ID]
    return remapped.SerializeToString()
