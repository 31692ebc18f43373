"""Translation end to end: train into a run directory, translate, evaluate, inspect attention.

The `keras-transformer` command line (`keras_transformer.cli`) calls these.
"""

from keras_transformer.translation.attention_plot import plot_cross_attention
from keras_transformer.translation.averaging import average_models, average_run
from keras_transformer.translation.backup import TrainingInterrupted
from keras_transformer.translation.config import RECIPES, TranslationConfig, resolve_config
from keras_transformer.translation.evaluation import Evaluation, evaluate, score
from keras_transformer.translation.run_directory import check_run_dir, read_run_config
from keras_transformer.translation.trainer import TrainingDivergedError, load_splits, train
from keras_transformer.translation.translator import Translator
from keras_transformer.translation.validation import training_summary

__all__ = [
    "Evaluation",
    "RECIPES",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "TranslationConfig",
    "Translator",
    "average_models",
    "average_run",
    "check_run_dir",
    "evaluate",
    "load_splits",
    "plot_cross_attention",
    "read_run_config",
    "resolve_config",
    "score",
    "train",
    "training_summary",
]
