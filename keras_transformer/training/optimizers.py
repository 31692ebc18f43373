import keras

from keras_transformer.training.schedule import TransformerSchedule


def transformer_adam(
    hidden_dim: int, warmup_steps: int = 4000, scale: float = 1.0, **kwargs
) -> keras.optimizers.Adam:
    """Adam with the paper's settings and learning-rate schedule (section 5.3).

    beta_1 = 0.9, beta_2 = 0.98, epsilon = 1e-9, and `TransformerSchedule`.

    Args:
        hidden_dim: D, the model size.
        warmup_steps: warm-up steps of the schedule (4000 in the paper; use
            fewer for small data sets).
        scale: factor on the learning rate.
        **kwargs: more `keras.optimizers.Adam` arguments (e.g. `clipnorm`).

    Example:
    >>> optimizer = transformer_adam(hidden_dim=512)
    >>> optimizer.beta_2
    0.98
    """
    return keras.optimizers.Adam(
        learning_rate=TransformerSchedule(hidden_dim, warmup_steps, scale),
        beta_1=0.9,
        beta_2=0.98,
        epsilon=1e-9,
        **kwargs,
    )
