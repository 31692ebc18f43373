"""Fast decoding: greedy search, beam search and sampling with key/value caches.

Each search runs the encoder once, then generates all rows together in one
loop over `CachedSeq2SeqDecoder.step`, the one-token decoder step with
per-block key/value caches that the export reuses. The loops are written
with `keras.ops`: XLA-compiled with `tf.function(jit_compile=True)` under
TensorFlow and with `jax.jit` under JAX, run eagerly under torch.
"""

from keras_transformer.decoding.beam import beam_search
from keras_transformer.decoding.cached_decoder import CachedSeq2SeqDecoder
from keras_transformer.decoding.greedy import greedy_search
from keras_transformer.decoding.sampling import sample

__all__ = ["CachedSeq2SeqDecoder", "beam_search", "greedy_search", "sample"]
