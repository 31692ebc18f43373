"""The export names of `keras_transformer.files`, which holds the atomic writers.

Kept only for saved_model.py and tflite.py; remove once they import
`keras_transformer.files`.
"""

from keras_transformer.files import atomic_directory, check_target
from keras_transformer.files import write_file_atomic as write_bytes_atomic

__all__ = ["atomic_directory", "check_target", "write_bytes_atomic"]
