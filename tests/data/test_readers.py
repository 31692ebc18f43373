from pathlib import Path

import pytest

from keras_transformer.data.readers import (
    DataError,
    load_corpus,
    parse_direction,
    read_parallel,
    read_tatoeba,
    split_pairs,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


# Tatoeba / Anki files.


def test_read_tatoeba_directions(tmp_path):
    content = "Go.\tVa !\nI am a student.\tJe suis étudiant.\tCC-BY 2.0\n"
    path = write(tmp_path / "fra.txt", content)
    assert read_tatoeba(path) == [("Va !", "Go."), ("Je suis étudiant.", "I am a student.")]
    assert read_tatoeba(path, direction="en-fr") == [
        ("Go.", "Va !"),
        ("I am a student.", "Je suis étudiant."),
    ]


def test_read_tatoeba_normalizes_whitespace_and_skips_blank_lines(tmp_path):
    content = "\ufeff  Run!\tCours\u202f!  \r\n\n   \nWow!\tÇa\u00a0 alors\u2009!\n"
    path = write(tmp_path / "fra.txt", content)
    assert read_tatoeba(path) == [("Cours !", "Run!"), ("Ça alors !", "Wow!")]


def test_read_tatoeba_composes_accents(tmp_path):
    path = write(tmp_path / "fra.txt", "Student.\tE\u0301tudiant.\n")  # decomposed É
    assert read_tatoeba(path) == [("\u00c9tudiant.", "Student.")]


@pytest.mark.parametrize(
    "content, line, words",
    [
        ("Go.\tVa !\nno tab here\n", 2, "found 1 tab-separated field"),
        ("Go.\tVa !\nGo.\tVa !\tattribution\textra\n", 2, "found 4 tab-separated field"),
        ("Go.\tVa !\n\n\t Cours !\n", 3, "English side is empty"),
        ("Go.\t  \n", 1, "translation side is empty"),
    ],
)
def test_read_tatoeba_malformed_lines(tmp_path, content, line, words):
    path = write(tmp_path / "bad.txt", content)
    with pytest.raises(DataError, match=words) as error:
        read_tatoeba(path)
    assert f"bad.txt:{line}:" in str(error.value)


def test_read_tatoeba_undecodable_bytes(tmp_path):
    content = "Go.\tVa !\n".encode() + "Hi.\tSalut, ça va\n".encode("latin-1")
    path = write(tmp_path / "latin1.txt", content)
    with pytest.raises(DataError, match="not valid UTF-8") as error:
        read_tatoeba(path)
    assert "latin1.txt:2:" in str(error.value)


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_read_tatoeba_empty_file(tmp_path, content):
    path = write(tmp_path / "empty.txt", content)
    with pytest.raises(DataError, match="empty.txt"):
        read_tatoeba(path)


def test_read_tatoeba_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing.txt: no such file"):
        read_tatoeba(tmp_path / "missing.txt")


def test_read_tatoeba_needs_english_in_direction(tmp_path):
    path = write(tmp_path / "fra.txt", "Go.\tVa !\n")
    with pytest.raises(ValueError, match="'xx-en' or 'en-xx'"):
        read_tatoeba(path, direction="fr-de")


# Line-aligned files.


def test_read_parallel_pairs_lines_and_skips_lines_blank_on_both_sides(tmp_path):
    source = write(tmp_path / "train.fr", "Un chat.\n\nDeux  chiens.\n")
    target = write(tmp_path / "train.en", "A cat.\n  \nTwo dogs.\n")
    assert read_parallel(source, target) == [("Un chat.", "A cat."), ("Deux chiens.", "Two dogs.")]


def test_read_parallel_line_counts_differ(tmp_path):
    source = write(tmp_path / "train.fr", "Un.\nDeux.\nTrois.\n")
    target = write(tmp_path / "train.en", "One.\nTwo.\n")
    with pytest.raises(DataError) as error:
        read_parallel(source, target)
    message = str(error.value)
    assert "train.fr has 3 lines" in message and "train.en has 2" in message


def test_read_parallel_blank_on_one_side(tmp_path):
    source = write(tmp_path / "train.fr", "Un.\nDeux.\nTrois.\n")
    target = write(tmp_path / "train.en", "One.\nTwo.\n \n")
    with pytest.raises(DataError, match="line 3 of .*train.fr is not") as error:
        read_parallel(source, target)
    assert "train.en:3:" in str(error.value)


def test_read_parallel_undecodable_bytes(tmp_path):
    source = write(tmp_path / "train.fr", b"Un.\nDeux.\nTrois \xff.\n")
    target = write(tmp_path / "train.en", "One.\nTwo.\nThree.\n")
    with pytest.raises(DataError, match="not valid UTF-8") as error:
        read_parallel(source, target)
    assert "train.fr:3:" in str(error.value)


def test_read_parallel_empty_files(tmp_path):
    source = write(tmp_path / "train.fr", "")
    target = write(tmp_path / "train.en", "")
    with pytest.raises(DataError, match="train.fr: the file is empty"):
        read_parallel(source, target)
    write(source, "\n")
    write(target, "\n")
    with pytest.raises(DataError, match="hold no sentence pairs"):
        read_parallel(source, target)


# Dispatch.


def test_load_corpus_reads_tab_separated_file(tmp_path):
    path = write(tmp_path / "fra.txt", "Go.\tVa !\n")
    assert load_corpus(path) == [("Va !", "Go.")]
    assert load_corpus(str(path), direction="en-fr") == [("Go.", "Va !")]


def test_load_corpus_reads_line_aligned_files_by_prefix(tmp_path):
    write(tmp_path / "train.fr", "Un chat.\n")
    write(tmp_path / "train.en", "A cat.\n")
    assert load_corpus(tmp_path / "train") == [("Un chat.", "A cat.")]
    assert load_corpus(tmp_path / "train", direction="en-fr") == [("A cat.", "Un chat.")]


def test_load_corpus_missing_names_what_it_looked_for(tmp_path):
    write(tmp_path / "train.fr", "Un chat.\n")
    with pytest.raises(DataError) as error:
        load_corpus(tmp_path / "train", direction="fr-en")
    message = str(error.value)
    assert "No corpus found" in message
    assert "train.fr" in message and "train.en" in message


def test_load_corpus_file_without_tabs_suggests_prefix(tmp_path):
    path = write(tmp_path / "train.fr", "Un chat.\n")
    with pytest.raises(DataError, match="no tab-separated pairs.*common prefix"):
        load_corpus(path)


@pytest.mark.parametrize("direction", ["fr", "fr-fr", "FR-EN", "fr_en", "fr-en-de", None])
def test_direction_must_be_two_language_codes(tmp_path, direction):
    with pytest.raises(ValueError, match="`direction` must be two different"):
        load_corpus(tmp_path / "train", direction=direction)


def test_parse_direction():
    assert parse_direction("en-fr") == ("en", "fr")
    assert parse_direction("deu-en") == ("deu", "en")


# Splits.


def test_split_pairs_is_deterministic_disjoint_and_complete():
    pairs = [(f"source {i % 150}", f"target {i}") for i in range(200)]
    splits = split_pairs(pairs, validation_fraction=0.1, test_fraction=0.2, seed=7)
    assert splits == split_pairs(pairs, validation_fraction=0.1, test_fraction=0.2, seed=7)
    assert splits != split_pairs(pairs, validation_fraction=0.1, test_fraction=0.2, seed=8)
    assert sorted(sum(splits.values(), [])) == sorted(pairs)
    sources = {name: {source for source, _ in split} for name, split in splits.items()}
    assert len(sources["validation"]) == 15 and len(sources["test"]) == 30
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]


def test_split_pairs_rejects_bad_arguments():
    pairs = [("a", "b"), ("c", "d")]
    with pytest.raises(ValueError, match="Received 0 pairs"):
        split_pairs([])
    message = r"`test_fraction` must be a float in \[0, 1\)\. Received: test_fraction=1\.0"
    with pytest.raises(ValueError, match=message):
        split_pairs(pairs, test_fraction=1.0)
    with pytest.raises(ValueError, match="Cannot split 2 distinct source sentences"):
        split_pairs(pairs, validation_fraction=0.1, test_fraction=0.1)
    assert split_pairs(pairs, validation_fraction=0, test_fraction=0)["train"] == pairs


# The shared corpora.


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def test_reads_shared_multi30k_validation_set():
    shared_file("multi30k", "val.fr")
    pairs = load_corpus(SHARED_DATA / "multi30k" / "val", direction="fr-en")
    assert len(pairs) == 1014
    assert pairs[0] == (
        "Un groupe d'hommes chargent du coton dans un camion",
        "A group of men are loading cotton onto a truck",
    )
    assert pairs[1][1] == "A man sleeping in a green room on a couch."


def test_reads_shared_tatoeba_file():
    path = shared_file("tatoeba_fra_eng", "fra.txt")
    pairs = load_corpus(path, direction="fr-en")
    assert len(pairs) == 130_794
    assert pairs[:2] == [("Va !", "Go."), ("Cours !", "Run!")]
    assert not any("\u202f" in source or "\u00a0" in source for source, _ in pairs)
