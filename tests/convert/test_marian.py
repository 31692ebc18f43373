"""`from_marian` and `import_marian` against transformers' outputs on the tiny checkpoint."""

import json
import shutil
import sys

import numpy as np
import pytest
import sentencepiece

from marian_reference import CHECKPOINT, first_rows

from keras_transformer.cli import main
from keras_transformer.convert import from_marian, import_marian
from keras_transformer.data import DataError, detokenize
from keras_transformer.optional import MissingExtraError
from keras_transformer.translation import Translator

START, END = 2, 3


def test_logits_equal_transformers_for_a_padded_batch(marian_translator, reference):
    encoder, decoder = reference.batch()
    assert (encoder == 0).any() and (decoder == 0).any()  # both sides padded
    logits = np.asarray(marian_translator.model(
        {"encoder_token_ids": encoder, "decoder_token_ids": decoder}
    ))  # (B, T, V + 1)
    ours = logits[..., reference.marian_to_ours]  # (B, T, V) in Marian's order
    real = decoder != 0
    difference = np.abs(ours - reference.logits)[real].max()
    print(f"max abs logit difference with transformers: {difference:.2e}")
    assert difference <= 1e-4
    assert np.abs(reference.logits).max() > 3  # not a near-zero comparison
    assert (logits[..., START] < -1e8).all()  # [START] is never generated


def test_log_probabilities_equal_transformers(marian_translator, reference):
    encoder, decoder = reference.batch()
    logits = np.asarray(marian_translator.model(
        {"encoder_token_ids": encoder, "decoder_token_ids": decoder}
    )).astype("float64")

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    ours = log_softmax(logits)[..., reference.marian_to_ours]
    theirs = log_softmax(reference.logits.astype("float64"))
    assert np.abs(ours - theirs)[decoder != 0].max() <= 1e-4


def test_tokenization_equals_marian_tokenizer(marian_translator, reference):
    sources = marian_translator.source_token_ids(reference.values["sentences"])
    assert sources == reference.ours("source_ids")
    targets = marian_translator.target_tokenizer(reference.values["target_texts"])
    expected = [row[:-1] for row in reference.ours("target_ids")]  # without "</s>"
    assert [list(np.asarray(row)) for row in targets] == expected
    assert 1 in sum(sources, [])  # "☃" is unknown to both


@pytest.mark.parametrize("side", ["source", "target"])
def test_the_other_sides_pieces_do_not_change_segmentation(marian_translator, reference, side):
    original = sentencepiece.SentencePieceProcessor(
        model_file=str(CHECKPOINT / f"{side}.spm")
    )
    tokenizer = getattr(marian_translator, f"{side}_tokenizer")
    remapped = sentencepiece.SentencePieceProcessor(model_proto=tokenizer.proto)
    other_pieces = set(marian_translator.source_vocabulary) - {
        original.id_to_piece(i) for i in range(original.get_piece_size())
    }
    assert len(other_pieces) > 20  # the other language's pieces are in the model
    texts = reference.values["sentences"] + reference.values["target_texts"]
    for text in texts:  # both languages through both models
        assert remapped.encode(text, out_type=str) == original.encode(text, out_type=str)


def test_greedy_ids_equal_generate(marian_translator, reference):
    encoder, _ = reference.batch()
    tokens, _ = marian_translator.model.generate(
        encoder, max_length=reference.max_length, start_token_id=START, end_token_id=END
    )
    assert first_rows(tokens) == reference.ours("greedy_ids")


def test_beam_ids_equal_generate(marian_translator, reference):
    """Hugging Face's length penalty |Y|^a is not GNMT's ((5 + |Y|) / 6)^a;
    with 0 both rank by log-probability."""
    encoder, _ = reference.batch()
    tokens, _ = marian_translator.model.generate(
        encoder, max_length=reference.max_length, start_token_id=START, end_token_id=END,
        strategy="beam", beam_size=reference.values["beam_size"], length_penalty=0.0,
    )
    assert first_rows(tokens) == reference.ours("beam_ids")
    assert reference.values["beam_ids"] != reference.values["greedy_ids"]


@pytest.mark.parametrize("search", ["greedy", "beam_3", "beam_4"])
def test_random_sources_decode_as_generate(marian_translator, reference, search):
    """60 random sources of 2 to 19 ids: greedy, 3 and 4 beams (length penalty 0)."""
    encoder = np.where(np.asarray(reference.values["random_encoder_mask"]) == 1,
                       reference.marian_to_ours[np.asarray(reference.values["random_encoder_ids"])],
                       0).astype("int32")
    settings = {}
    if search != "greedy":
        settings = {"strategy": "beam", "beam_size": int(search[-1]), "length_penalty": 0.0}
    tokens, _ = marian_translator.model.generate(
        encoder, max_length=reference.max_length, start_token_id=START, end_token_id=END,
        **settings,
    )
    expected = reference.ours(f"random_{search}_ids")
    assert any(row[-1] == END for row in expected) and any(row[-1] != END for row in expected)
    assert first_rows(tokens) == expected


def test_run_directory_translates_like_the_imported_model(
    marian_run_dir, marian_translator, reference
):
    config = json.loads((marian_run_dir / "config.json").read_text())
    assert config["tokenizer"] == "sentencepiece" and config["direction"] == "fr-en"
    assert config["share_embeddings"] and config["activation"] == "silu"
    assert config["max_sequence_length"] == 64  # max_position_embeddings
    translator = Translator.from_run_dir(marian_run_dir)
    sentences = reference.values["sentences"]
    assert translator.translate(sentences, beam_size=1) == marian_translator.translate(
        sentences, beam_size=1
    )
    encoder, decoder = reference.batch()
    inputs = {"encoder_token_ids": encoder, "decoder_token_ids": decoder}
    np.testing.assert_array_equal(
        np.asarray(translator.model(inputs)), np.asarray(marian_translator.model(inputs))
    )


def test_detokenization_equals_marian_tokenizer(marian_translator, reference):
    rows = [row[:-1] if row[-1] == END else row for row in reference.ours("greedy_ids")]
    texts = detokenize(marian_translator.target_tokenizer, rows)
    assert texts == reference.values["greedy_texts"]  # MarianTokenizer.batch_decode


def test_cli_imports_then_translates(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["import-marian", str(CHECKPOINT), "--output-dir", str(run_dir)]) == 0
    assert str(run_dir) in capsys.readouterr().out
    assert main(["translate", "--run-dir", str(run_dir), "--beam-size", "1",
                 "Je suis étudiant."]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    assert main(["import-marian", str(CHECKPOINT), "--output-dir", str(run_dir)]) == 2
    assert "already exists" in capsys.readouterr().err
    corpus = tmp_path / "pairs.tsv"  # Tatoeba's English<TAB>other
    corpus.write_text("I am a student.\tJe suis étudiant.\nShe is tall.\tElle est grande.\n")
    assert main(["evaluate", "--run-dir", str(run_dir), "--data", str(corpus),
                 "--beam-size", "2"]) == 0
    assert "BLEU =" in capsys.readouterr().out
    image = tmp_path / "attention.png"
    assert main(["attention", "--run-dir", str(run_dir), "Je suis étudiant.",
                 "--output", str(image), "--beam-size", "1"]) == 0
    assert image.stat().st_size > 0


def test_direction_from_the_directory_name(tmp_path):
    checkpoint = tmp_path / "opus-mt-de-fr"
    shutil.copytree(CHECKPOINT, checkpoint)
    (checkpoint / "tokenizer_config.json").unlink()
    assert from_marian(checkpoint).direction == "de-fr"
    assert from_marian(checkpoint, direction="de-en").direction == "de-en"
    renamed = tmp_path / "mystery"
    checkpoint.rename(renamed)
    with pytest.raises(DataError, match="cannot tell the translation direction"):
        from_marian(renamed)


def broken_checkpoint(tmp_path, remove=(), config=None, tensors=None):
    """A copy of the tiny checkpoint with files removed, config.json keys
    changed, or tensors replaced."""
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(CHECKPOINT, checkpoint)
    for name in remove:
        (checkpoint / name).unlink()
    if config:
        values = json.loads((checkpoint / "config.json").read_text())
        (checkpoint / "config.json").write_text(json.dumps({**values, **config}))
    if tensors:
        from safetensors.numpy import load_file, save_file

        values = load_file(str(checkpoint / "model.safetensors"))
        save_file({**values, **tensors}, str(checkpoint / "model.safetensors"))
    return checkpoint


@pytest.mark.parametrize(
    "change, message",
    [
        ({"remove": ["target.spm", "vocab.json"]},
         r"checkpoint' lacks \['target\.spm', 'vocab\.json'\]; expected \['config\.json', "),
        ({"config": {"model_type": "bart"}},
         r"config\.json: \"model_type\" is 'bart'; expected \"marian\""),
        ({"config": {"d_model": 32}},
         r"model\.safetensors: tensor 'model\.shared\.weight' has shape \(146, 16\), but "
         r"config\.json implies \(146, 32\)"),
        ({"tensors": {"model.encoder.layers.1.fc1.weight": np.zeros((8, 16), "float32")}},
         r"tensor 'model\.encoder\.layers\.1\.fc1\.weight' has shape \(8, 16\), but config\.json "
         r"implies \(32, 16\)"),
        ({"config": {"decoder_layers": 3}},
         r"encoder_layers=2 and decoder_layers=3 differ"),
    ],
)
def test_bad_checkpoints_get_one_clear_line(tmp_path, change, message):
    checkpoint = broken_checkpoint(tmp_path, **change)
    with pytest.raises(DataError, match=message) as error:
        from_marian(checkpoint)
    assert "\n" not in str(error.value)


def test_cli_reports_a_bad_checkpoint_in_one_line(tmp_path, capsys):
    checkpoint = broken_checkpoint(tmp_path, config={"model_type": "t5"})
    assert main(["import-marian", str(checkpoint), "--output-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("keras-transformer import-marian: error:")
    assert "expected \"marian\"" in error
    assert not (tmp_path / "run").exists()


def test_missing_checkpoint_directory(tmp_path):
    with pytest.raises(DataError, match=r"nowhere' does not exist\. Expected a directory"):
        import_marian(tmp_path / "nowhere", tmp_path / "run")


def test_missing_safetensors_names_the_extra(monkeypatch):
    for name in ("safetensors", "safetensors.numpy"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(MissingExtraError, match=r"importing a Marian checkpoint needs "
                       r"safetensors, .* pip install 'keras-transformer-seq2seq\[convert\]'"):
        from_marian(CHECKPOINT)


def test_a_piece_missing_from_the_vocabulary_is_refused(tmp_path):
    """MarianTokenizer maps such a piece to "<unk>"; a SentencePiece model
    cannot, so the import refuses instead of segmenting differently."""
    checkpoint = broken_checkpoint(tmp_path)
    vocabulary = json.loads((checkpoint / "vocab.json").read_text())
    piece = "▁Il"
    assert piece in vocabulary
    vocabulary["<extra>"] = vocabulary.pop(piece)  # the same ids, one piece renamed
    (checkpoint / "vocab.json").write_text(json.dumps(vocabulary))
    with pytest.raises(DataError, match=r"source\.spm: 1 of its pieces are not in vocab\.json "
                                        r"\(\['▁Il'\]\)"):
        from_marian(checkpoint)
