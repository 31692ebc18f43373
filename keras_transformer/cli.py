"""The `keras-transformer` command line: train, translate, evaluate, attention,
export, average, import-marian.

    keras-transformer train --output-dir runs/embedded
    keras-transformer translate --run-dir runs/embedded "Je suis étudiant."
    keras-transformer evaluate --run-dir runs/embedded
    keras-transformer attention --run-dir runs/embedded "Je suis étudiant." --output a.png
    keras-transformer export --run-dir runs/embedded --format tflite --output model.tflite
    keras-transformer import-marian opus-mt-fr-en --output-dir runs/opus-fr-en
    keras-transformer average --run-dir runs/multi30k --last 5

User mistakes (a missing run directory, a malformed data file, an unknown
config key, a missing pip extra) print one line naming what was received and
expected, and exit with code 2; a training run that diverges exits with code 1.

`--help` and `--version` do not import TensorFlow. The subcommands import it
with its C++ start-up lines (oneDNN, CUDA) hidden and TF_CPP_MIN_LOG_LEVEL=3
unless TF_CPP_MIN_LOG_LEVEL is set; `--verbose` shows them all.
"""

import argparse
import contextlib
import os
import sys

from keras_transformer import DISTRIBUTION, __version__

PROGRAM = "keras-transformer"
USAGE_ERROR = 2
SAMPLE_TRANSLATIONS = 5


def _print_evaluation(evaluation, title: str) -> None:
    print(f"{title}: {evaluation.summary()}")
    print(f"BLEU = {evaluation.bleu:.2f}")
    print(f"BLEU (lowercased) = {evaluation.bleu_lowercase:.2f}")
    print(f"chrF = {evaluation.chrf:.2f}")
    print(f"BLEU signature: {evaluation.signature}")


def _print_backend(args: argparse.Namespace, translator, num_sentences: int) -> None:
    if getattr(args, "verbose", False):
        backend = translator.choose_backend(num_sentences)
        print(f"{PROGRAM} {args.command}: decoding {num_sentences} sentences with the "
              f"{backend} backend (--backend {args.backend})", file=sys.stderr)


def run_train(args: argparse.Namespace) -> None:
    from keras_transformer.data import PAPER_EXAMPLE
    from keras_transformer.translation import evaluate, train, training_summary

    config = args.config
    if config is None and args.init_from is None:
        config = "tiny" if args.data is None else "small"
    translator = train(
        config,
        args.output_dir,
        args.data,
        args.direction,
        args.epochs,
        batch_tokens=args.batch_tokens,
        validation_data=args.validation_data,
        test_data=args.test_data,
        init_from=args.init_from,
        validation_steps=args.validation_steps,
        validation_bleu_sentences=args.validation_bleu_sentences,
        early_stopping=args.early_stopping,
        max_time=args.max_time,
        distribution=args.distribution,
    )
    print(training_summary(translator.run_dir))  # a worker's own, under multi-worker
    evaluation = evaluate(translator)
    _print_evaluation(evaluation, "Test split")
    print("Translations:")
    samples = list(zip(evaluation.sources, evaluation.references, evaluation.hypotheses))
    if args.data is None and translator.direction == "fr-en":
        samples.insert(0, (*PAPER_EXAMPLE, translator.translate([PAPER_EXAMPLE[0]])[0]))
    for source, reference, hypothesis in samples[:SAMPLE_TRANSLATIONS]:
        print(f"  {source} -> {hypothesis}    [reference: {reference}]")
    print(f"Run directory: {args.output_dir}")


def run_translate(args: argparse.Namespace) -> None:
    from keras_transformer.translation import Translator

    translator = Translator.from_run_dir(args.run_dir, backend=args.backend)
    texts = args.text if args.text else sys.stdin.read().splitlines()
    if args.n_best is None and not args.scores:
        _print_backend(args, translator, len(texts))
        for translation in translator.translate(texts, beam_size=args.beam_size):
            print(translation)
        return
    n_best = translator.translate_n_best(texts, args.n_best or 1, beam_size=args.beam_size)
    for index, hypotheses in enumerate(n_best):
        for translation, score in hypotheses:
            fields = [str(index), f"{score:.4f}"] if args.scores else [str(index)]
            print("\t".join([*fields, translation]))


def run_evaluate(args: argparse.Namespace) -> None:
    from keras_transformer.translation import Translator, evaluate

    translator = Translator.from_run_dir(args.run_dir, backend=args.backend)
    evaluation = evaluate(translator, args.data, beam_size=args.beam_size)
    _print_backend(args, translator, len(evaluation.sources))
    _print_evaluation(evaluation, args.data or "Test split")


def run_attention(args: argparse.Namespace) -> None:
    from keras_transformer.optional import import_optional

    import_optional("matplotlib", "plot", "the attention plot")  # before the model loads
    from keras_transformer.translation import Translator, plot_cross_attention
    from keras_transformer.translation.attention_plot import select_layer

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


def run_export(args: argparse.Namespace) -> None:
    from keras_transformer.export import export_from_run_dir

    options = {"quantization": args.quantization, "decoding": args.decoding}
    written = export_from_run_dir(
        args.run_dir,
        args.format,
        args.output,
        **{name: value for name, value in options.items() if value is not None},
        text_signature=not args.ids_only,
        jit_compile=not args.no_xla,
        overwrite=args.overwrite,
    )
    print(f"Wrote {written}")


def run_import_marian(args: argparse.Namespace) -> None:
    from keras_transformer.convert import import_marian

    written = import_marian(
        args.checkpoint_dir,
        args.output_dir,
        direction=args.direction,
        max_sequence_length=args.max_sequence_length,
        overwrite=args.overwrite,
    )
    print(f"Wrote {written}")


def run_average(args: argparse.Namespace) -> None:
    from keras_transformer.translation import average_run, evaluate

    translator, checkpoints, output = average_run(args.run_dir, args.last, args.output)
    names = ", ".join(path.name for path in checkpoints)
    print(f"Wrote {output}: the mean of {len(checkpoints)} checkpoints ({names})")
    _print_evaluation(evaluate(translator, beam_size=args.beam_size), "Test split")


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text!r}")
    return value


def positive_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def add_backend_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--backend",
        choices=["auto", "xla", "litert"],
        default="auto",
        help="the decoding loop: xla (the model's generate, in batches), litert (the "
        "exported .tflite loop, a sentence at a time; cached in RUN_DIR/litert/) or "
        "auto (default: litert for one sentence when LiteRT is installed, else xla; "
        "--verbose prints the choice)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Train and use Transformer translation models (Vaswani et al., 2017).",
    )
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {__version__}")
    verbose = argparse.ArgumentParser(add_help=False)  # before or after the subcommand
    for container in (parser, verbose):
        container.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,  # so that a subcommand's default keeps the global flag
            help="show TensorFlow's start-up log lines (hidden by default)",
        )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_command(name, run, help, description):
        command = commands.add_parser(
            name, parents=[verbose], help=help, description=description
        )
        command.set_defaults(run=run)
        if name in ("train", "import-marian"):
            command.add_argument("--output-dir", required=True, metavar="RUN_DIR")
        else:
            command.add_argument("--run-dir", required=True)
        return command

    command = add_command(
        "train",
        run_train,
        help="train a model into a run directory",
        description="Train a translation model into RUN_DIR, keeping the best "
        "checkpoint by validation BLEU as RUN_DIR/model.keras, then print BLEU on its "
        "test split and a few translations. Re-run the same command to resume "
        "after an interruption or a --max-time stop; with a larger --epochs, to "
        "continue a finished run.",
    )
    command.add_argument("--data", metavar="PATH", help=(
        "a tab-separated Tatoeba/Anki file (English<TAB>other) or the prefix of "
        "line-aligned files (PATH.fr, PATH.en); default: the embedded generated corpus"
    ))
    command.add_argument("--validation-data", metavar="PATH", help=(
        "the validation set, in the formats of --data (default: 10%% of --data)"
    ))
    command.add_argument("--test-data", metavar="PATH", help=(
        "the test set, in the formats of --data (default: 10%% of --data)"
    ))
    command.add_argument("--direction", help="source-target (default fr-en, or that of "
                         "--init-from)")
    command.add_argument("--epochs", type=positive_int, help=(
        "override the config's epochs; on a finished run, more epochs continue it"
    ))
    command.add_argument("--batch-tokens", type=positive_int, metavar="N", help=(
        "batches of about N tokens (padded max(source, target) length times sentences, "
        "as fairseq's --max-tokens) instead of the config's batch_size sentences"
    ))
    command.add_argument("--validation-steps", type=positive_int, metavar="N", help=(
        "validation BLEU every N steps too (always at epoch ends)"
    ))
    command.add_argument(
        "--validation-bleu-sentences", type=positive_int, metavar="N", default=500,
        help="validation sentences decoded for BLEU, a seeded sample (default 500)",
    )
    command.add_argument("--early-stopping", type=positive_int, metavar="PATIENCE", help=(
        "stop after PATIENCE validation BLEU evaluations without improvement"
    ))
    command.add_argument("--max-time", type=positive_number, metavar="MINUTES", help=(
        "stop after this much training time (after the current step, backed up; re-run "
        "to go on)"
    ))
    command.add_argument("--init-from", metavar="RUN_DIR", help=(
        "fine-tune: start from this finished run's weights and vocabularies (same model "
        "sizes and tokenizer; its config unless --config is given)"
    ))
    command.add_argument(
        "--config",
        metavar="tiny|small|base|FILE.json",
        help="a recipe or a JSON file of overrides, such as "
        '{"recipe": "tiny", "tokenizer": "sentencepiece"} (default: tiny for the '
        "embedded corpus, small with --data)",
    )
    command.add_argument(
        "--distribution",
        choices=["none", "mirrored", "multi-worker"],
        default="none",
        help="train under a tf.distribute strategy: mirrored = this machine's GPUs (one "
        "replica on a CPU-only machine), multi-worker = the workers of TF_CONFIG; "
        "see docs/distributed.md (default none)",
    )

    command = add_command(
        "translate",
        run_translate,
        help="translate sentences",
        description="Translate the TEXT arguments, or the lines of standard input.",
    )
    command.add_argument("--beam-size", type=positive_int, help="1 = greedy (default: config)")
    add_backend_argument(command)
    command.add_argument("--n-best", type=positive_int, metavar="K", help=(
        "print the K best translations of each sentence (K <= beam size) as "
        "INDEX<TAB>[SCORE<TAB>]TRANSLATION lines, best first"
    ))
    command.add_argument("--scores", action="store_true", help=(
        "print each translation's beam score (log-probability / GNMT length penalty)"
    ))
    command.add_argument("text", nargs="*", metavar="TEXT")

    command = add_command(
        "evaluate",
        run_evaluate,
        help="BLEU and chrF on a test set",
        description="Cased and lowercased sacrebleu BLEU and chrF on the run's test "
        "split, or on every pair of --data.",
    )
    command.add_argument("--data", metavar="PATH", help="a corpus, as for train")
    command.add_argument("--beam-size", type=positive_int)
    add_backend_argument(command)

    command = add_command(
        "attention",
        run_attention,
        help="plot the cross-attention of a translation",
        description="Translate TEXT and draw the decoder's cross-attention weights of "
        "one layer as heatmaps (one per head, or their mean).",
    )
    command.add_argument("text", metavar="TEXT")
    command.add_argument("--output", required=True, metavar="IMAGE", help="e.g. heatmap.png")
    command.add_argument("--layer", type=int, default=-1, help="decoder layer (default -1)")
    command.add_argument("--average-heads", action="store_true")
    command.add_argument("--beam-size", type=positive_int)

    command = add_command(
        "export",
        run_export,
        help="export a run for serving",
        description="Export a run directory with keras_transformer.export.",
    )
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
    command.add_argument(
        "--no-xla",
        action="store_true",
        help="for saved_model: a plain-graph decoding loop, for TF Serving without "
        "--xla_cpu_compilation_enabled (slower)",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing output")

    command = add_command(
        "import-marian",
        run_import_marian,
        help="import a Hugging Face OPUS-MT (Marian) checkpoint as a run directory",
        description="Convert a local Marian checkpoint directory (config.json, "
        "model.safetensors, source.spm, target.spm, vocab.json; e.g. from "
        "`huggingface-cli download Helsinki-NLP/opus-mt-fr-en --local-dir "
        "opus-mt-fr-en`) into RUN_DIR, which translate, evaluate, attention and "
        "export then read. Nothing is downloaded.",
    )
    command.add_argument("checkpoint_dir", metavar="CHECKPOINT_DIR")
    command.add_argument(
        "--direction", help="source-target, such as fr-en (default: from the checkpoint)"
    )
    command.add_argument(
        "--max-sequence-length",
        type=positive_int,
        help="longest source and translation in tokens (default: max_position_embeddings)",
    )
    command.add_argument("--overwrite", action="store_true", help="replace an existing RUN_DIR")

    command = add_command(
        "average",
        run_average,
        help="average the last epoch checkpoints",
        description="Average the weights of RUN_DIR's last K epoch checkpoints (as "
        "fairseq's average_checkpoints), write the model, and print its BLEU on the "
        "run's test split.",
    )
    command.add_argument("--last", type=positive_int, required=True, metavar="K")
    command.add_argument("--output", metavar="PATH.keras", help=(
        "default RUN_DIR/averaged.keras; RUN_DIR/model.keras makes it the run's model"
    ))
    command.add_argument("--beam-size", type=positive_int)
    return parser


@contextlib.contextmanager
def _stderr_file_descriptor_silenced():
    """Points file descriptor 2 at os.devnull: C++ log lines written to it vanish."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow without its C++ start-up log lines.

    TensorFlow 2.21 writes them before its logging reads TF_CPP_MIN_LOG_LEVEL,
    so they are hidden by muting the stderr file descriptor during the import
    (an import error is still raised, after it is restored). The level then
    hides the log lines of later calls, unless the user set one.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with _stderr_file_descriptor_silenced():
        import tensorflow  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", False):
        import_tensorflow_quietly()
    from keras_transformer.data import DataError
    from keras_transformer.optional import MissingExtraError
    from keras_transformer.translation import TrainingDivergedError, TrainingInterrupted

    try:
        args.run(args)
    except (
        DataError, MissingExtraError, ValueError, FileNotFoundError, FileExistsError
    ) as error:
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
