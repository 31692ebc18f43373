import keras

from keras_transformer.training.schedule import TransformerSchedule


@keras.saving.register_keras_serializable(package="keras_transformer")
class DenseGradientAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` that makes sparse gradients dense first.

    On the TensorFlow backend the gradient of an embedding lookup is a
    `tf.IndexedSlices` with one row per looked-up token, repeated tokens
    repeated. Keras 3.15's Adam squares those rows one by one, so the second
    moment of a token seen n times gets the sum of n squares instead of the
    square of the sum, and a batch trains differently from the same batch
    split into accumulated micro-batches (whose sums are dense). Summing the
    rows first gives the exact Adam update; the optimizer's moments are dense
    (V, D) tensors anyway. Other backends have dense gradients already.

    Example:
    >>> optimizer = DenseGradientAdam(learning_rate=1e-3)
    >>> isinstance(optimizer, keras.optimizers.Adam)
    True
    """

    def apply(self, grads, trainable_variables=None):
        return super().apply([_densify(grad) for grad in grads], trainable_variables)


def _densify(gradient):
    """Sums the rows of a `tf.IndexedSlices` into a dense tensor; other
    gradients pass unchanged (`ops.convert_to_tensor(..., sparse=False)`
    keeps IndexedSlices sparse in Keras 3.15)."""
    if keras.backend.backend() != "tensorflow":
        return gradient
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


def transformer_adam(
    hidden_dim: int,
    warmup_steps: int = 4000,
    scale: float = 1.0,
    gradient_accumulation_steps: int | None = None,
    **kwargs,
) -> keras.optimizers.Adam:
    """Adam with the paper's settings and learning-rate schedule (section 5.3).

    beta_1 = 0.9, beta_2 = 0.98, epsilon = 1e-9, and `TransformerSchedule`,
    as a `DenseGradientAdam` (exact updates of embedding tables).

    With `gradient_accumulation_steps=k` the optimizer adds up the gradients
    of k consecutive batches and updates the weights once, with their mean:
    k batches of N tokens then train like one batch of k * N tokens (the
    paper's ~25,000 target tokens per batch on a small machine). The
    schedule counts updates, not batches, so `warmup_steps` keeps its
    meaning. Each batch's loss is a mean over its own non-padding tokens,
    so batches holding very different numbers of tokens are weighted
    slightly differently from one big batch.

    Args:
        hidden_dim: D, the model size.
        warmup_steps: warm-up updates of the schedule (4000 in the paper; use
            fewer for small data sets).
        scale: factor on the learning rate.
        gradient_accumulation_steps: None, or k >= 2 batches per update.
        **kwargs: more `keras.optimizers.Adam` arguments (e.g. `clipnorm`).

    Example:
    >>> optimizer = transformer_adam(hidden_dim=512, gradient_accumulation_steps=4)
    >>> optimizer.beta_2, optimizer.gradient_accumulation_steps
    (0.98, 4)

    Reference:
        Vaswani et al., 2017, sections 5.1 (about 25,000 target tokens per
        batch) and 5.3.
    """
    return DenseGradientAdam(
        learning_rate=TransformerSchedule(
            hidden_dim, warmup_steps, scale, gradient_accumulation_steps or 1
        ),
        beta_1=0.9,
        beta_2=0.98,
        epsilon=1e-9,
        gradient_accumulation_steps=gradient_accumulation_steps,
        **kwargs,
    )
