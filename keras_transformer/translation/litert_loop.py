"""The exported LiteRT decoding loop as a `Translator` backend.

For a request of a few sentences on a CPU, the whole search loop exported
by `export_tflite` (float32, batch 1) and run by the LiteRT interpreter is
faster than the XLA-compiled `Seq2SeqTransformer.generate`: LiteRT's
XNNPACK kernels do the one-row products of a decoding step better than
XLA's CPU dots (see docs/performance.md). Larger requests decode faster as
one XLA batch. The exported loop is the same search on the same weights,
so it gives the same tokens as `generate` wherever float32 round-off does
not change an argmax (tested against it; see docs/serving.md).

Exporting takes about 10-20 s, so the .tflite is cached: under
`RUN_DIR/litert/` when the model comes from a run directory, else in a
temporary directory that lives as long as the loop. The file name holds a
fingerprint of the weights, the search settings and the library and
TensorFlow versions, so a retrained model or a new release never reads a
stale file.

Shape letters: see `keras_transformer`; here S = M is the exported source
and output length, the run's `max_sequence_length`.
"""

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_transformer.checks import check_positive_int
from keras_transformer.models import Seq2SeqTransformer
from keras_transformer.optional import import_optional

CACHE_DIR = "litert"
# Interpreter threads unless told (see `LiteRTLoop`).
DEFAULT_THREADS = 2


def _fingerprint(model: Seq2SeqTransformer, settings: dict) -> str:
    """A digest of the weights, the export settings and the versions."""
    import tensorflow as tf

    from keras_transformer import __version__

    digest = hashlib.sha256(repr((sorted(settings.items()), __version__, tf.__version__)).encode())
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        digest.update(f"{weight.path}{value.shape}{value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:16]


class LiteRTLoop:
    """A model's whole search loop as a batch-1 .tflite run by LiteRT.

    Args:
        model: a `Seq2SeqTransformer`.
        decoding: "greedy" or "beam".
        beam_size, length_penalty: the beam search's settings.
        start_token_id, end_token_id: as for `generate`.
        max_length: S = M, the source ids taken and the tokens generated.
        run_dir: where the model comes from; its `litert/` folder caches
            the export. None, or a folder that cannot be written, caches it
            in a temporary directory.
        num_threads: the interpreter's threads. None (default): two, or
            one on a one-core machine. LiteRT splits each one-row product
            over its threads, and a batch-1 step is bound by reading the
            weights: on two idle cores two threads took 46 ms for 64 greedy
            tokens of the small config against 64 ms for one (beam 4: 89
            against 101 ms), but with the other core busy 71 against 64 ms.
            More than two threads is untested.

    Call arguments:
        source_ids: one sentence's encoder ids, at most `max_length`.

    Returns:
        int32 (M,): its target ids, ended by `end_token_id` then 0.
    """

    def __init__(
        self,
        model: Seq2SeqTransformer,
        *,
        decoding: str,
        beam_size: int,
        length_penalty: float,
        start_token_id: int,
        end_token_id: int,
        max_length: int,
        run_dir: str | os.PathLike | None = None,
        num_threads: int | None = None,
    ):
        check_positive_int("num_threads", num_threads, none_means="the default threads")
        interpreter = import_optional(
            "ai_edge_litert.interpreter", "export", "The LiteRT translation backend"
        )
        from keras_transformer.export import export_tflite

        self.length = max_length
        settings = {
            "decoding": decoding,
            "beam_size": beam_size,
            "length_penalty": length_penalty,
            "start_token_id": start_token_id,
            "end_token_id": end_token_id,
            "length": self.length,
        }
        self.path = self._cached_path(model, settings, run_dir)
        if not self.path.is_file():
            logging.info("Exporting the LiteRT decoding loop to %s (once).", self.path)
            export_tflite(
                model,
                self.path,
                batch_size=1,
                max_input_length=self.length,
                max_output_length=self.length,
                decoding=decoding,
                beam_size=beam_size,
                length_penalty=length_penalty,
            )
        if num_threads is None:
            num_threads = min(DEFAULT_THREADS, os.cpu_count() or 1)
        self._translate = interpreter.Interpreter(
            str(self.path), num_threads=num_threads
        ).get_signature_runner("translate")

    def _cached_path(self, model, settings: dict, run_dir) -> Path:
        name = f"translate_{settings['decoding']}_{_fingerprint(model, settings)}.tflite"
        if run_dir is not None:
            directory = Path(run_dir) / CACHE_DIR
            try:
                directory.mkdir(exist_ok=True)
                if os.access(directory, os.W_OK) or (directory / name).is_file():
                    return directory / name
            except OSError:
                pass
        self._temporary = tempfile.TemporaryDirectory(prefix="keras_transformer_litert_")
        return Path(self._temporary.name) / name

    def __call__(self, source_ids) -> np.ndarray:
        """Translates one sentence: its S' <= S source ids (ending with the
        end token) -> int32 (S,) target ids, ended by the end token then 0."""
        if len(source_ids) > self.length:
            raise ValueError(
                f"The LiteRT loop takes at most {self.length} source ids; "
                f"received {len(source_ids)}."
            )
        padded = np.zeros((1, self.length), "int32")  # (1, S)
        padded[0, : len(source_ids)] = source_ids
        return self._translate(encoder_token_ids=padded)["token_ids"][0]
