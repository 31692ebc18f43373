"""Export: a SavedModel for TF Serving (strings in, strings out) and a
builtins-only TFLite model for phones (ids in, ids out). See docs/serving.md."""

from keras_transformer.export.run_dir import export_from_run_dir
from keras_transformer.export.saved_model import export_saved_model
from keras_transformer.export.tflite import export_tflite

__all__ = ["export_from_run_dir", "export_saved_model", "export_tflite"]
