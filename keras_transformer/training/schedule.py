import keras
from keras import ops

from keras_transformer.checks import check_number, check_positive_int


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of section 5.3: linear warm-up, then 1/sqrt(step).

    `lrate = scale * hidden_dim^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)`
    with `step` counted from 1.

    Args:
        hidden_dim: D, the model size (512 in the base model).
        warmup_steps: 4000 in the paper.
        scale: a constant factor (1.0 in the paper).
        gradient_accumulation_steps: batches per weight update. Keras
            optimizers call their schedule with the number of batches seen,
            also when they accumulate gradients over k batches, so the
            schedule divides that count by k to count updates. Set it to the
            optimizer's `gradient_accumulation_steps` (`transformer_adam`
            does).

    Example:
    >>> schedule = TransformerSchedule(hidden_dim=512)
    >>> round(float(schedule(3999)), 6)  # the peak, at step 4000
    0.000699

    Reference:
        Vaswani et al., 2017, section 5.3.
    """

    def __init__(self, hidden_dim, warmup_steps=4000, scale=1.0, gradient_accumulation_steps=1):
        for name, value in (
            ("hidden_dim", hidden_dim),
            ("warmup_steps", warmup_steps),
            ("gradient_accumulation_steps", gradient_accumulation_steps),
        ):
            check_positive_int(name, value)
        check_number("scale", scale, positive=True)
        self.hidden_dim = hidden_dim
        self.warmup_steps = warmup_steps
        self.scale = scale
        self.gradient_accumulation_steps = gradient_accumulation_steps

    def __call__(self, step):
        if self.gradient_accumulation_steps > 1:
            step = ops.floor_divide(step, self.gradient_accumulation_steps)
        step = ops.cast(step, "float32") + 1.0
        warmup = ops.cast(self.warmup_steps, "float32")
        rate = ops.minimum(ops.rsqrt(step), step * warmup**-1.5)
        return self.scale * self.hidden_dim**-0.5 * rate

    def get_config(self):
        return {
            "hidden_dim": self.hidden_dim,
            "warmup_steps": self.warmup_steps,
            "scale": self.scale,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }
