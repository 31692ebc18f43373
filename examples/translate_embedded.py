"""Train a French -> English Transformer on the embedded corpus and score it.

The main job, end to end on two CPU cores in a few minutes: the "tiny"
recipe trains on the generated French-English pairs into a run directory,
then prints BLEU and chrF on the held-out test split, a few translations and
the paper's example "Je suis étudiant.". Run it again to resume an
interrupted run; translate with the saved run afterwards:

    python examples/translate_embedded.py
    keras-transformer translate --run-dir runs/embedded "Je suis étudiant."
"""

import argparse
import time

from keras_transformer.data import PAPER_EXAMPLE
from keras_transformer.translation import evaluate, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/embedded")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    translator = train(args.config, args.output_dir, epochs=args.epochs)
    trained = time.perf_counter() - started
    evaluation = evaluate(translator)
    print(f"\nTest split: {evaluation.summary()}")
    for source, reference, hypothesis in list(
        zip(evaluation.sources, evaluation.references, evaluation.hypotheses)
    )[:5]:
        print(f"  {source}\n    -> {hypothesis}\n    (reference: {reference})")
    source, reference = PAPER_EXAMPLE
    (translation,) = translator.translate([source])
    verdict = "correct" if translation == reference else f"expected {reference!r}"
    print(f"Paper example: {source} -> {translation} ({verdict})")
    total = time.perf_counter() - started
    print(f"Wall time: {total:.0f} s ({trained:.0f} s training, {total - trained:.0f} s scoring)")
    print(f"Run directory: {args.output_dir}")


if __name__ == "__main__":
    main()
