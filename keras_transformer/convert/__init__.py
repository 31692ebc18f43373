"""Pretrained checkpoints of other libraries, imported into this library's layers.

`from_marian` reads a Hugging Face Marian (OPUS-MT) checkpoint directory as a
`Translator`; `import_marian` writes it as a run directory that `translate`,
`evaluate`, `attention` and `export` read as a trained run. Reading the
weights needs the `convert` extra (safetensors).
"""

from keras_transformer.convert.marian import from_marian, import_marian

__all__ = ["from_marian", "import_marian"]
