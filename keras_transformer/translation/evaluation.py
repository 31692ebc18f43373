"""Corpus BLEU and chrF of a translator on a test set, with sacrebleu."""

import dataclasses
import os

import sacrebleu

from keras_transformer.data import load_corpus
from keras_transformer.translation.run_directory import TEST_FILE, read_test_split
from keras_transformer.translation.translator import Translator


@dataclasses.dataclass
class Evaluation:
    """Scores of one test set, and the sentences behind them.

    `bleu` is cased sacrebleu BLEU (13a tokenization), `bleu_lowercase` the
    same with `lowercase=True`, `chrf` sacrebleu chrF; all in [0, 100].
    `signature` is sacrebleu's signature of `bleu`, such as
    "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", which
    says how to reproduce the score.
    """

    bleu: float
    bleu_lowercase: float
    chrf: float
    sources: list[str]
    references: list[str]
    hypotheses: list[str]
    signature: str

    def summary(self) -> str:
        return (
            f"BLEU {self.bleu:.2f} (lowercased {self.bleu_lowercase:.2f}), "
            f"chrF {self.chrf:.2f} on {len(self.sources)} sentences"
        )


def score(sources: list[str], references: list[str], hypotheses: list[str]) -> Evaluation:
    """Corpus BLEU, lowercased BLEU and chrF of hypotheses against references.

    Raises:
        ValueError: unless the three lists are non-empty and of one length.
    """
    lengths = {
        "sources": len(sources), "references": len(references), "hypotheses": len(hypotheses)
    }
    if len(set(lengths.values())) != 1 or not len(sources):
        raise ValueError(
            "`sources`, `references` and `hypotheses` must be non-empty and aligned "
            f"(one of each per sentence). Received lengths {lengths}."
        )
    bleu = sacrebleu.BLEU()
    return Evaluation(
        bleu=bleu.corpus_score(hypotheses, [references]).score,
        bleu_lowercase=sacrebleu.corpus_bleu(hypotheses, [references], lowercase=True).score,
        chrf=sacrebleu.corpus_chrf(hypotheses, [references]).score,
        sources=list(sources),
        references=list(references),
        hypotheses=list(hypotheses),
        signature=str(bleu.get_signature()),
    )


def evaluate(
    run_dir: str | os.PathLike | Translator,
    data: str | os.PathLike | None = None,
    beam_size: int | None = None,
) -> Evaluation:
    """Translates a test set and scores it.

    Args:
        run_dir: a run directory, or a `Translator` already loaded.
        data: a corpus for `load_corpus` in the run's direction, evaluated
            whole (e.g. `multi30k/test_2016_flickr`); None evaluates the
            run's own test split, RUN_DIR/test.tsv.
        beam_size: as in `Translator.translate`.

    Returns:
        An `Evaluation`.

    Example:
    >>> evaluate("runs/embedded").summary()  # doctest: +SKIP
    'BLEU 97.10 (lowercased 97.10), chrF 98.70 on 1000 sentences'
    """
    translator = run_dir if isinstance(run_dir, Translator) else Translator.from_run_dir(run_dir)
    if data is not None:
        pairs = load_corpus(data, translator.direction)
    elif translator.run_dir is not None:
        pairs = read_test_split(translator.run_dir / TEST_FILE)
    else:
        raise ValueError(
            "This `Translator` has no run directory, so it has no test split; pass `data`."
        )
    sources = [source for source, _ in pairs]
    references = [reference for _, reference in pairs]
    return score(sources, references, translator.translate(sources, beam_size))
