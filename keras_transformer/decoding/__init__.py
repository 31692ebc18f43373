"""Fast decoding: greedy search, beam search and sampling with key/value caches.

Each search takes a `Seq2SeqTransformer`, runs its encoder once, then
generates all rows together in one loop over `Seq2SeqTransformer.decode_step`,
the one-token pass of the model's own layers with per-block key/value caches
that the export reuses. The loops are written with `keras.ops`: XLA-compiled
with `tf.function(jit_compile=True)` under TensorFlow and with `jax.jit`
under JAX, run eagerly under torch. `Seq2SeqTransformer.generate` calls them.
"""

from keras_transformer.decoding.beam import beam_search
from keras_transformer.decoding.greedy import greedy_search
from keras_transformer.decoding.sampling import sample

__all__ = ["beam_search", "greedy_search", "sample"]
