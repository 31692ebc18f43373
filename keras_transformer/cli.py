"""The `keras-transformer` command line: train, translate, evaluate, attention, export.

    keras-transformer train --output-dir runs/embedded
    keras-transformer translate --run-dir runs/embedded "Je suis étudiant."
    keras-transformer evaluate --run-dir runs/embedded
    keras-transformer attention --run-dir runs/embedded "Je suis étudiant." --output a.png
    keras-transformer export --run-dir runs/embedded --format tflite --output model.tflite

User mistakes (a missing run directory, a malformed data file, an unknown
config key) print one line naming what was received and expected, and exit
with code 2; a training run that diverges exits with code 1.
"""

import argparse
import sys

from keras_transformer.data import PAPER_EXAMPLE, DataError
from keras_transformer.translation import (
    TrainingDivergedError,
    TrainingInterrupted,
    Translator,
    evaluate,
    plot_cross_attention,
    train,
)
from keras_transformer.translation.attention_plot import select_layer

PROGRAM = "keras-transformer"
USAGE_ERROR = 2
SAMPLE_TRANSLATIONS = 5


def _print_evaluation(evaluation, title: str) -> None:
    print(f"{title}: {evaluation.summary()}")
    print(f"BLEU = {evaluation.bleu:.2f}")
    print(f"BLEU (lowercased) = {evaluation.bleu_lowercase:.2f}")
    print(f"chrF = {evaluation.chrf:.2f}")


def run_train(args: argparse.Namespace) -> None:
    config = args.config or ("tiny" if args.data is None else "small")
    translator = train(config, args.output_dir, args.data, args.direction, args.epochs)
    evaluation = evaluate(translator)
    _print_evaluation(evaluation, "Test split")
    print("Translations:")
    samples = list(zip(evaluation.sources, evaluation.references, evaluation.hypotheses))
    if args.data is None and args.direction == "fr-en":
        samples.insert(0, (*PAPER_EXAMPLE, translator.translate([PAPER_EXAMPLE[0]])[0]))
    for source, reference, hypothesis in samples[:SAMPLE_TRANSLATIONS]:
        print(f"  {source} -> {hypothesis}    [reference: {reference}]")
    print(f"Run directory: {args.output_dir}")


def run_translate(args: argparse.Namespace) -> None:
    translator = Translator.from_run_dir(args.run_dir)
    texts = args.text if args.text else sys.stdin.read().splitlines()
    for translation in translator.translate(texts, beam_size=args.beam_size):
        print(translation)


def run_evaluate(args: argparse.Namespace) -> None:
    evaluation = evaluate(args.run_dir, args.data, beam_size=args.beam_size)
    _print_evaluation(evaluation, args.data or "Test split")


def run_attention(args: argparse.Namespace) -> None:
    translator = Translator.from_run_dir(args.run_dir)
    source_tokens, target_tokens, weights = translator.cross_attention(
        args.text, beam_size=args.beam_size
    )
    layer_weights = select_layer(weights, args.layer)  # (H, T, S)
    title = f"{args.text} (decoder layer {args.layer % len(weights)} of {len(weights)})"
    plot_cross_attention(
        source_tokens, target_tokens, layer_weights, args.output, args.average_heads, title
    )
    print(f"Wrote {args.output}: {title}")


# The export subcommand calls `keras_transformer.export.export_from_run_dir`,
# imported on use so that the other subcommands never load the export stack.
def run_export(args: argparse.Namespace) -> None:
    from keras_transformer.export import export_from_run_dir

    options = {"quantization": args.quantization, "decoding": args.decoding}
    written = export_from_run_dir(
        args.run_dir,
        args.format,
        args.output,
        **{name: value for name, value in options.items() if value is not None},
        text_signature=not args.ids_only,
        overwrite=args.overwrite,
    )
    print(f"Wrote {written}")


def positive_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Train and use Transformer translation models (Vaswani et al., 2017).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    command = commands.add_parser(
        "train",
        help="train a model into a run directory",
        description="Train a translation model into RUN_DIR, then print BLEU on its "
        "test split and a few translations. Re-run the same command to resume "
        "after an interruption.",
    )
    command.add_argument("--output-dir", required=True, metavar="RUN_DIR")
    command.add_argument(
        "--data",
        metavar="PATH",
        help="a tab-separated Tatoeba/Anki file (English<TAB>other) or the prefix of "
        "line-aligned files (PATH.fr, PATH.en); default: the embedded generated corpus",
    )
    command.add_argument("--direction", default="fr-en", help="source-target (default fr-en)")
    command.add_argument("--epochs", type=positive_int, help="override the config's epochs")
    command.add_argument(
        "--config",
        metavar="tiny|small|base|FILE.json",
        help="a recipe or a JSON file of overrides, such as "
        '{"recipe": "tiny", "tokenizer": "sentencepiece"} (default: tiny for the '
        "embedded corpus, small with --data)",
    )
    command.set_defaults(run=run_train)

    command = commands.add_parser(
        "translate",
        help="translate sentences",
        description="Translate the TEXT arguments, or the lines of standard input.",
    )
    command.add_argument("--run-dir", required=True)
    command.add_argument("--beam-size", type=positive_int, help="1 = greedy (default: config)")
    command.add_argument("text", nargs="*", metavar="TEXT")
    command.set_defaults(run=run_translate)

    command = commands.add_parser(
        "evaluate",
        help="BLEU and chrF on a test set",
        description="Cased and lowercased sacrebleu BLEU and chrF on the run's test "
        "split, or on every pair of --data.",
    )
    command.add_argument("--run-dir", required=True)
    command.add_argument("--data", metavar="PATH", help="a corpus, as for train")
    command.add_argument("--beam-size", type=positive_int)
    command.set_defaults(run=run_evaluate)

    command = commands.add_parser(
        "attention",
        help="plot the cross-attention of a translation",
        description="Translate TEXT and draw the decoder's cross-attention weights of "
        "one layer as heatmaps (one per head, or their mean).",
    )
    command.add_argument("--run-dir", required=True)
    command.add_argument("text", metavar="TEXT")
    command.add_argument("--output", required=True, metavar="IMAGE", help="e.g. heatmap.png")
    command.add_argument("--layer", type=int, default=-1, help="decoder layer (default -1)")
    command.add_argument("--average-heads", action="store_true")
    command.add_argument("--beam-size", type=positive_int)
    command.set_defaults(run=run_attention)

    command = commands.add_parser(
        "export",
        help="export a run for serving",
        description="Export a run directory with keras_transformer.export.",
    )
    command.add_argument("--run-dir", required=True)
    command.add_argument("--format", required=True, choices=["saved_model", "tflite"])
    command.add_argument("--output", required=True, help="SavedModel directory or .tflite file")
    command.add_argument(
        "--quantization",
        choices=["none", "float16", "dynamic_range"],
        help="for tflite (default none)",
    )
    command.add_argument(
        "--decoding",
        choices=["greedy", "beam"],
        help="default: beam for a SavedModel when the config's beam_size > 1, greedy for tflite",
    )
    command.add_argument(
        "--ids-only",
        action="store_true",
        help="for saved_model: only the translate_ids signature and no tensorflow-text "
        "op, for TF Serving builds that lack them (tokenize in the client)",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing output")
    command.set_defaults(run=run_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (DataError, ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"{PROGRAM} {args.command}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except TrainingDivergedError as error:
        print(f"{PROGRAM} {args.command}: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:  # SIGINT or SIGTERM during `train`
        print(f"{PROGRAM} {args.command}: {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{PROGRAM} {args.command}: interrupted.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
