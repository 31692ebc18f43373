"""Writes the tiny Marian checkpoint and the reference outputs of tests/convert.

Run it with a Python that has torch, transformers, safetensors and
sentencepiece (not the project's environment, which needs neither torch nor
transformers):

    python3 -m venv /tmp/venv-ref
    /tmp/venv-ref/bin/pip install torch==2.13.0 transformers safetensors sentencepiece numpy
    /tmp/venv-ref/bin/python tests/convert/make_marian_fixture.py [OUTPUT_DIR]

OUTPUT_DIR defaults to tests/convert/fixtures. It gets:
- tiny-opus-mt-fr-en/: what `huggingface-cli download` gives for an OPUS-MT
  model, at toy size: config.json, generation_config.json,
  model.safetensors, source.spm, target.spm, vocab.json,
  tokenizer_config.json. The weights are random (a fixed seed) and large
  enough that the logits are far from uniform; the layer norms and
  `final_logits_bias` are random too, so a converter that skipped them
  would fail the comparison. The two SentencePiece models (unigram, as
  OPUS-MT's) are trained here on generated French and English sentences,
  and vocab.json is their joint vocabulary in Marian's order: "</s>" 0,
  "<unk>" 1, the pieces, "<pad>" last.
- marian_reference.json: the sentences, MarianTokenizer's ids of both sides,
  and `generate`'s greedy and beam (3 beams, length_penalty 0) ids, in
  Marian's ids; the same searches (and 4 beams) of 60 random sources.
- marian_reference_logits.npy: float32 (B, T, V) logits of `MarianMTModel`
  for a padded batch (the ids are in the JSON).

Everything is deterministic on CPU: the same versions give the same files.
tests/convert/test_marian_reference.py runs this script again (when torch and
transformers are installed) and compares.
"""

import io
import json
import sys
from pathlib import Path

import numpy as np
import sentencepiece
import torch
from transformers import MarianConfig, MarianMTModel, MarianTokenizer

CHECKPOINT_NAME = "tiny-opus-mt-fr-en"
REFERENCE_FILE = "marian_reference.json"
LOGITS_FILE = "marian_reference_logits.npy"
SEED = 21
BEAM_SIZE = 3
MAX_LENGTH = 24
EOS_BIAS = 5.0

SUBJECTS = [
    ("je", "I", "suis", "am"), ("tu", "you", "es", "are"), ("il", "he", "est", "is"),
    ("elle", "she", "est", "is"), ("nous", "we", "sommes", "are"),
    ("vous", "you", "êtes", "are"), ("ils", "they", "sont", "are"),
]
ADJECTIVES = [
    ("content", "happy"), ("fatigué", "tired"), ("grand", "tall"), ("prêt", "ready"),
    ("étudiant", "a student"), ("à la maison", "at home"), ("en retard", "late"),
    ("malade", "sick"), ("heureux", "glad"), ("occupé", "busy"), ("libre", "free"),
    ("au jardin", "in the garden"), ("dans la cuisine", "in the kitchen"),
    ("très jeune", "very young"), ("toujours là", "always there"), ("curieux", "curious"),
    ("à Paris", "in Paris"), ("près de la rivière", "near the river"),
]
OBJECTS = [
    ("un livre", "a book"), ("une pomme", "an apple"), ("le journal", "the newspaper"),
    ("des fleurs", "flowers"), ("la voiture rouge", "the red car"), ("du pain", "bread"),
    ("une lettre", "a letter"), ("le chat noir", "the black cat"), ("de l'eau", "water"),
]
# Sentences to translate: seen words, unseen words, a character no model has.
TEST_SENTENCES = [
    "Je suis étudiant.",
    "Nous sommes en retard, mais vous êtes prêts.",
    "Elle est grande.",
    "Bonjour ! Où est la gare ?",
    "Ils sont à la maison avec Zoé ☃.",
]


def corpus() -> tuple[list[str], list[str]]:
    """Generated French and English sentences, aligned."""
    french, english = [], []
    for number, (fr_subject, en_subject, fr_be, en_be) in enumerate(SUBJECTS):
        for fr_adjective, en_adjective in ADJECTIVES[number % 3 :: 2]:
            french.append(f"{fr_subject.capitalize()} {fr_be} {fr_adjective}.")
            english.append(f"{en_subject.capitalize()} {en_be} {en_adjective}.")
        for fr_object, en_object in OBJECTS[number % 2 :: 2]:
            french.append(f"{fr_subject.capitalize()} a {fr_object} ?")
            english.append(f"Does {en_subject} have {en_object}?")
    french += ["Bonjour, comment allez-vous ?", "Merci beaucoup !", "Où est la gare ?"]
    english += ["Hello, how are you?", "Thank you very much!", "Where is the station?"]
    return french, english


def train_unigram(texts: list[str], vocabulary_size: int) -> bytes:
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts * 4),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocabulary_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def joint_vocabulary(source_proto: bytes, target_proto: bytes) -> dict[str, int]:
    """Marian's joint vocabulary: "</s>", "<unk>", the pieces of both models
    (source first, each once), "<pad>"."""
    pieces = []
    for proto in (source_proto, target_proto):
        processor = sentencepiece.SentencePieceProcessor(model_proto=proto)
        for index in range(processor.get_piece_size()):
            piece = processor.id_to_piece(index)
            normal = not (processor.is_control(index) or processor.is_unknown(index))
            if normal and piece not in pieces:
                pieces.append(piece)
    tokens = ["</s>", "<unk>", *pieces, "<pad>"]
    return {token: index for index, token in enumerate(tokens)}


def randomize(model: MarianMTModel, generator: torch.Generator) -> None:
    """Random weights that make a random model's outputs vary.

    Token embeddings in random directions, all of norm 2 (with rows of
    different norms, the longest one wins every step), other weights of
    standard deviation 0.3, layer norms around (1, 0), and a random
    `final_logits_bias` with "</s>" raised so that some outputs end before
    MAX_LENGTH and some do not."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "embed_positions" in name:  # fixed sinusoids, not saved
                continue
            noise = torch.randn(parameter.shape, generator=generator)
            if name == "model.shared.weight":
                parameter.copy_(2.0 * noise / noise.norm(dim=1, keepdim=True))
            elif "layer_norm" in name and name.endswith("weight"):
                parameter.copy_(1.0 + 0.3 * noise)
            elif name.endswith("bias"):
                parameter.copy_(0.2 * noise)
            else:
                parameter.copy_(0.3 * noise)
        bias = 0.1 * torch.randn(model.final_logits_bias.shape, generator=generator)
        bias[0, model.config.eos_token_id] += EOS_BIAS
        model.final_logits_bias.copy_(bias)


def marian_outputs(ids: torch.Tensor) -> list[list[int]]:
    """`generate` rows without the start token, up to and including "</s>"."""
    rows = []
    for row in ids.tolist():
        row = row[1:]
        rows.append(row[: row.index(0) + 1] if 0 in row else row)
    return rows


def random_sources(vocabulary_size: int, pad: int, count: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention mask) of `count` random sources of 2 to 19 ids then
    "</s>", padded with pad: many more decoding cases than the sentences."""
    rng = np.random.default_rng(SEED)
    lengths = rng.integers(2, 20, count)
    ids = np.full((count, int(lengths.max()) + 1), pad)
    mask = np.zeros(ids.shape, "int64")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, vocabulary_size - 1, length)
        ids[row, length] = 0
        mask[row, : length + 1] = 1
    return ids, mask


def main(output_dir: Path) -> None:
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    checkpoint = output_dir / CHECKPOINT_NAME
    checkpoint.mkdir(parents=True, exist_ok=True)
    french, english = corpus()
    source_proto, target_proto = train_unigram(french, 160), train_unigram(english, 140)
    (checkpoint / "source.spm").write_bytes(source_proto)
    (checkpoint / "target.spm").write_bytes(target_proto)
    vocabulary = joint_vocabulary(source_proto, target_proto)
    (checkpoint / "vocab.json").write_text(json.dumps(vocabulary, ensure_ascii=False, indent=2))
    tokenizer = MarianTokenizer(
        *(str(checkpoint / name) for name in ("source.spm", "target.spm", "vocab.json")),
        source_lang="fr", target_lang="en", model_max_length=64,
    )
    tokenizer.save_pretrained(checkpoint)

    pad = vocabulary["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocabulary), decoder_vocab_size=len(vocabulary), d_model=16,
        encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        activation_function="swish", max_position_embeddings=64, scale_embedding=True,
        pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0,
        forced_eos_token_id=0, share_encoder_decoder_embeddings=True,
    )
    model = MarianMTModel(config).eval()
    randomize(model, generator)
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.max_length = MAX_LENGTH
    model.generation_config.num_beams = 4
    model.save_pretrained(checkpoint)
    model = MarianMTModel.from_pretrained(checkpoint).eval()  # what users load

    sources = tokenizer(TEST_SENTENCES, padding=True, return_tensors="pt")
    targets = tokenizer(text_target=english[: len(TEST_SENTENCES)], padding=True)
    decoder_ids = [[pad] + row[:-1] for row in targets["input_ids"]]  # shifted right
    with torch.no_grad():
        logits = model(
            input_ids=sources["input_ids"],
            attention_mask=sources["attention_mask"],
            decoder_input_ids=torch.tensor(decoder_ids),
        ).logits
        settings = {"max_length": MAX_LENGTH, "forced_eos_token_id": None, "do_sample": False}
        greedy = model.generate(**sources, num_beams=1, **settings)
        beam = model.generate(
            **sources, num_beams=BEAM_SIZE, length_penalty=0.0, early_stopping=False, **settings
        )
        random_ids, random_mask = random_sources(len(vocabulary), pad)
        random = {"input_ids": torch.tensor(random_ids), "attention_mask": torch.tensor(random_mask)}
        random_greedy = model.generate(**random, num_beams=1, **settings)
        random_beams = {
            size: model.generate(**random, num_beams=size, length_penalty=0.0, **settings)
            for size in (BEAM_SIZE, BEAM_SIZE + 1)
        }
    np.save(output_dir / LOGITS_FILE, logits.numpy().astype("float32"))
    reference = {
        "sentences": TEST_SENTENCES,
        "target_sentences": english[: len(TEST_SENTENCES)],
        "source_ids": [tokenizer(text)["input_ids"] for text in TEST_SENTENCES],
        "target_ids": [tokenizer(text_target=text)["input_ids"] for text in english],
        "target_texts": english,
        "encoder_ids": sources["input_ids"].tolist(),
        "encoder_mask": sources["attention_mask"].tolist(),
        "decoder_ids": decoder_ids,
        "decoder_mask": targets["attention_mask"],
        "greedy_ids": marian_outputs(greedy),
        "beam_ids": marian_outputs(beam),
        "beam_size": BEAM_SIZE,
        "max_length": MAX_LENGTH,
        "greedy_texts": tokenizer.batch_decode(greedy, skip_special_tokens=True),
        "random_encoder_ids": random_ids.tolist(),
        "random_encoder_mask": random_mask.tolist(),
        "random_greedy_ids": marian_outputs(random_greedy),
        **{f"random_beam_{size}_ids": marian_outputs(ids) for size, ids in random_beams.items()},
    }
    (output_dir / REFERENCE_FILE).write_text(
        json.dumps(reference, ensure_ascii=False) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "fixtures")
