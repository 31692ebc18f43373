"""Readers for parallel corpora: Tatoeba/Anki tab-separated files and line-aligned files.

Every reader returns a list of `(source, target)` string pairs. Text is normalized
once, here, where it enters the library: Unicode NFC, and every run of whitespace
(including the no-break spaces French typography puts before `!`, `?`, `:` and `;`)
becomes one ASCII space, with none at either end.
"""

import os
import random
import re
import unicodedata
from pathlib import Path

from keras_transformer.checks import check_rate

Pair = tuple[str, str]
PathLike = str | os.PathLike

_DIRECTION_PATTERN = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")


class DataError(ValueError):
    """A corpus file is missing or malformed; the message names the file and line."""


def parse_direction(direction: str) -> tuple[str, str]:
    """Splits a translation direction like `"fr-en"` into its language codes.

    Args:
        direction: `"source-target"`, two different lowercase ISO 639 codes of two
            or three letters.

    Returns:
        The `(source_code, target_code)` tuple.

    Example:
    >>> parse_direction("fr-en")
    ('fr', 'en')
    """
    match = _DIRECTION_PATTERN.match(direction) if isinstance(direction, str) else None
    if match is None or match.group(1) == match.group(2):
        raise ValueError(
            "`direction` must be two different lowercase language codes joined by "
            f"'-', such as 'fr-en' or 'en-fr'. Received: {direction!r}"
        )
    return match.group(1), match.group(2)


def read_tatoeba(path: PathLike, direction: str = "fr-en") -> list[Pair]:
    """Reads a Tatoeba/Anki file of `English<TAB>Other[<TAB>attribution]` lines.

    Blank lines are skipped; any other line must hold a non-empty English side and
    a non-empty side in the other language.

    Args:
        path: the tab-separated file, such as manythings.org's `fra.txt`.
        direction: `"xx-en"` gives `(other, english)` pairs, `"en-xx"` gives
            `(english, other)` pairs.

    Returns:
        The `(source, target)` pairs in file order.

    Raises:
        DataError: for a file that is missing, empty, not UTF-8, or has a line
            that is not two or three tab-separated fields with two non-empty
            sentences. The message names the file and the 1-based line.

    Example:
    >>> pairs = read_tatoeba("fra.txt", direction="fr-en")  # doctest: +SKIP
    >>> pairs[0]  # doctest: +SKIP
    ('Va !', 'Go.')
    """
    source_code, target_code = parse_direction(direction)
    if "en" not in (source_code, target_code):
        raise ValueError(
            "Tatoeba files pair English with one other language, so `direction` "
            f"must be 'xx-en' or 'en-xx'. Received: {direction!r}"
        )
    pairs = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise DataError(
                f"{path}:{number}: expected 'English<TAB>translation[<TAB>attribution]', "
                f"found {len(fields)} tab-separated field(s)."
            )
        english, other = _normalize(fields[0]), _normalize(fields[1])
        if not english or not other:
            empty = "English" if not english else "translation"
            raise DataError(f"{path}:{number}: the {empty} side is empty.")
        pairs.append((english, other) if source_code == "en" else (other, english))
    if not pairs:
        raise DataError(f"{path}: the file holds no sentence pairs.")
    return pairs


def read_parallel(source_path: PathLike, target_path: PathLike) -> list[Pair]:
    """Reads two line-aligned files: line `i` of one translates line `i` of the other.

    Lines that are blank in both files are skipped.

    Args:
        source_path: one sentence per line in the source language, e.g. `train.fr`.
        target_path: the aligned translations, e.g. `train.en`.

    Returns:
        The `(source, target)` pairs in file order.

    Raises:
        DataError: for missing, empty or non-UTF-8 files, different line counts,
            or a line blank on one side only (the message names the line).

    Example:
    >>> pairs = read_parallel("train.fr", "train.en")  # doctest: +SKIP
    >>> pairs[0]  # doctest: +SKIP
    ('Deux jeunes hommes blancs sont dehors près de buissons.', 'Two young, ...')
    """
    source_lines = _read_lines(source_path)
    target_lines = _read_lines(target_path)
    if len(source_lines) != len(target_lines):
        raise DataError(
            f"Line-aligned files differ in length: {source_path} has "
            f"{len(source_lines)} lines, {target_path} has {len(target_lines)}."
        )
    pairs = []
    for number, (source, target) in enumerate(zip(source_lines, target_lines), start=1):
        source, target = _normalize(source), _normalize(target)
        if bool(source) != bool(target):
            blank, other = (source_path, target_path) if not source else (target_path, source_path)
            raise DataError(
                f"{blank}:{number}: the line is blank but line {number} of {other} is not."
            )
        if source:
            pairs.append((source, target))
    if not pairs:
        raise DataError(f"{source_path} and {target_path} hold no sentence pairs.")
    return pairs


def load_corpus(path: PathLike, direction: str = "fr-en") -> list[Pair]:
    """Reads a corpus in whichever supported format `path` names.

    - a tab-separated file: read with `read_tatoeba`;
    - a prefix such as `multi30k/train` with `train.fr` and `train.en` next to
      it (the suffixes are the language codes of `direction`): read with
      `read_parallel`.

    Args:
        path: a tab-separated file or a prefix of two line-aligned files.
        direction: `"source-target"` language codes, such as `"fr-en"`.

    Returns:
        The `(source, target)` pairs.

    Raises:
        ValueError: for a malformed `direction`.
        DataError: when neither format is found at `path`, or the files are
            malformed.

    Example:
    >>> pairs = load_corpus("../shared/data/multi30k/val", "fr-en")  # doctest: +SKIP
    >>> len(pairs)  # doctest: +SKIP
    1014
    """
    source_code, target_code = parse_direction(direction)
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as file:
            head = file.read(1 << 16)
            if not head.strip():
                raise DataError(f"{path}: the file is empty; expected sentence pairs.")
            if b"\t" not in head:
                raise DataError(
                    f"{path} has no tab-separated pairs. For line-aligned files, pass "
                    f"their common prefix, e.g. {path.with_suffix('')}."
                )
        return read_tatoeba(path, direction)
    source_path = Path(f"{path}.{source_code}")
    target_path = Path(f"{path}.{target_code}")
    if source_path.is_file() and target_path.is_file():
        return read_parallel(source_path, target_path)
    raise DataError(
        f"No corpus found at {path}: looked for a tab-separated file {path} and for "
        f"line-aligned files {source_path} and {target_path} (direction {direction!r})."
    )


def check_pairs(pairs: list[Pair]) -> None:
    """Raises ValueError unless every item of `pairs` is a `(source, target)`
    pair of strings, naming the first item that is not."""
    if isinstance(pairs, (str, bytes)):
        raise ValueError(
            "`pairs` must be a list of (source, target) string pairs. "
            f"Received a string: {pairs[:40]!r}"
        )
    for index, pair in enumerate(pairs):
        if not (
            isinstance(pair, (tuple, list))
            and len(pair) == 2
            and all(isinstance(text, str) for text in pair)
        ):
            raise ValueError(
                "`pairs` must hold (source, target) pairs of two strings. "
                f"Received: pairs[{index}]={pair!r}"
            )


def split_pairs(
    pairs: list[Pair],
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 1234,
) -> dict[str, list[Pair]]:
    """Splits a corpus without official splits into train, validation and test.

    The split is made over distinct source sentences, so a sentence with several
    translations (common in Tatoeba) lands in one split only and never leaks from
    training into evaluation. The fractions are therefore fractions of distinct
    source sentences. A non-zero fraction always gets at least one sentence.
    Within each split, pairs keep their corpus order.

    Args:
        pairs: the `(source, target)` pairs.
        validation_fraction: share of source sentences held out for validation.
        test_fraction: share of source sentences held out for testing.
        seed: seed of the shuffle; the same seed gives the same split.

    Returns:
        `{"train": [...], "validation": [...], "test": [...]}`.

    Example:
    >>> pairs = [(f"s{i}", f"t{i}") for i in range(10)]
    >>> splits = split_pairs(pairs, validation_fraction=0.2, test_fraction=0.1)
    >>> [len(splits[name]) for name in ("train", "validation", "test")]
    [7, 2, 1]
    """
    if not pairs:
        raise ValueError("`pairs` must hold at least one pair. Received 0 pairs.")
    check_pairs(pairs)
    fractions = {"validation_fraction": validation_fraction, "test_fraction": test_fraction}
    for name, fraction in fractions.items():
        check_rate(name, fraction)
    sources = list(dict.fromkeys(source for source, _ in pairs))
    random.Random(seed).shuffle(sources)
    sizes = [
        max(1, round(len(sources) * fraction)) if fraction > 0 else 0
        for fraction in (test_fraction, validation_fraction)
    ]
    if sum(sizes) >= len(sources):
        raise ValueError(
            f"Cannot split {len(sources)} distinct source sentences into "
            f"{sizes[1]} for validation, {sizes[0]} for testing and at least one for "
            "training. Use smaller fractions or more data."
        )
    split_of = dict.fromkeys(sources[: sizes[0]], "test")
    split_of.update(dict.fromkeys(sources[sizes[0] : sum(sizes)], "validation"))
    splits = {"train": [], "validation": [], "test": []}
    for pair in pairs:
        splits[split_of.get(pair[0], "train")].append(pair)
    return splits


def _read_lines(path: PathLike) -> list[str]:
    """The lines of a UTF-8 file (a leading byte-order mark is dropped), unnormalized."""
    try:
        with open(path, "rb") as file:
            raw_lines = file.read().split(b"\n")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file.") from None
    if raw_lines[-1] == b"":
        raw_lines.pop()
    if not raw_lines:
        raise DataError(f"{path}: the file is empty.")
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as error:
            raise DataError(
                f"{path}:{number}: not valid UTF-8 (byte {error.start + 1} of the line)."
            ) from None
    return lines


def _normalize(text: str) -> str:
    """NFC, whitespace runs (any Unicode space) to one ASCII space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())
