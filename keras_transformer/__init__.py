"""keras_transformer: Keras 3 layers for the Transformer of "Attention Is All You Need".

Shape letters, used in every module's comments and docstrings:
    B  batch (rows)                  S  source length
    T  target length                 D  hidden (model) dim
    H  attention heads               Dh head dim (D / H)
    F  feed-forward dim              V  vocabulary size
    L  layers (blocks) of a stack    K  beams, or hypotheses per row
    M  the most steps a search decodes (`max_length`), the length of a
       self-attention cache (M * K in beam search)
Masks are boolean, True = may attend (or: a real token, not padding).

Installed as the `keras-transformer-seq2seq` distribution (`DISTRIBUTION`); the
import name is `keras_transformer`.

Importing the package loads neither Keras nor TensorFlow: the subpackages
(`kt.layers`, `kt.models`, `kt.training`, `kt.decoding`, `kt.export`, `kt.data`,
`kt.translation`) and the names re-exported here are imported on first access,
so that `keras-transformer --help` and `--version` start fast and quietly.
`keras.saving.load_model` finds this package's classes (the model, layers,
loss, optimizer, schedule) once `kt.models` and `kt.training` have been
imported. Both are imported by `import keras_transformer` when Keras is
already loaded, and by the first access to any subpackage: `import keras`
then `import keras_transformer`, or any use of `kt.<subpackage>`, is enough
to load a saved model.
"""

import importlib
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
DISTRIBUTION = "keras-transformer-seq2seq"

_SUBPACKAGES = (
    "convert", "data", "decoding", "export", "layers", "models", "training", "translation",
)
# Public name -> (module, attribute) for the names re-exported at the top level.
_REEXPORTS = {
    "build_seq2seq_transformer": ("keras_transformer.models", "build_seq2seq_transformer"),
    "Seq2SeqTransformer": ("keras_transformer.models", "Seq2SeqTransformer"),
}

__all__ = ["DISTRIBUTION", "__version__", *_SUBPACKAGES, *_REEXPORTS]


def __getattr__(name):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        _register_serializables()
        return module
    if name in _REEXPORTS:
        module_name, attribute = _REEXPORTS[name]
        value = getattr(importlib.import_module(module_name), attribute)
        _register_serializables()
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _register_serializables():
    """Keras finds a saved object's class only once the module that registers
    it has run (`keras.saving.load_model` imports no other package): with
    Keras loaded, registering costs little."""
    if "keras" in sys.modules:
        for name in ("models", "training"):
            importlib.import_module(f"{__name__}.{name}")


_register_serializables()
