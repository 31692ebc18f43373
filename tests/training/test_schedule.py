import keras
import numpy as np
import pytest

from keras_transformer.training import TransformerSchedule


def reference_rate(step, hidden_dim, warmup_steps, scale=1.0):
    """Section 5.3 with 1-based steps: the optimizer's iteration `step` is update `step + 1`."""
    update = step + 1
    return scale * hidden_dim**-0.5 * min(update**-0.5, update * warmup_steps**-1.5)


@pytest.mark.parametrize("hidden_dim, warmup_steps, scale", [(512, 4000, 1.0), (64, 100, 2.0)])
def test_matches_the_formula(hidden_dim, warmup_steps, scale):
    schedule = TransformerSchedule(hidden_dim, warmup_steps, scale)
    for step in [0, 1, 10, warmup_steps // 2, warmup_steps - 2, warmup_steps - 1, warmup_steps,
                 3 * warmup_steps, 100_000]:
        np.testing.assert_allclose(
            float(schedule(step)), reference_rate(step, hidden_dim, warmup_steps, scale), rtol=1e-5
        )


def test_peaks_after_warmup_steps_updates():
    schedule = TransformerSchedule(hidden_dim=512, warmup_steps=40)
    rates = np.array([float(schedule(step)) for step in range(200)])
    assert rates.argmax() == 39  # the 40th update, iteration 39
    np.testing.assert_allclose(rates.max(), 512**-0.5 * 40**-0.5, rtol=1e-5)
    assert (np.diff(rates[:40]) > 0).all()
    assert (np.diff(rates[40:]) < 0).all()


def test_paper_base_model_peak():
    np.testing.assert_allclose(float(TransformerSchedule(512)(3999)), 6.98771e-4, rtol=1e-5)


def test_accepts_tensor_steps_and_drives_an_optimizer():
    schedule = TransformerSchedule(16, warmup_steps=4)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    variable = keras.Variable(np.ones(3, "float32"))
    for step in range(6):
        np.testing.assert_allclose(float(optimizer.learning_rate), reference_rate(step, 16, 4),
                                   rtol=1e-5)
        optimizer.apply_gradients([(keras.ops.ones(3), variable)])
    assert int(optimizer.iterations) == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [({"hidden_dim": 0}, "positive integer. Received: hidden_dim=0"),
     ({"hidden_dim": 8.0}, "Received: hidden_dim=8.0"),
     ({"warmup_steps": -5}, "Received: warmup_steps=-5"),
     ({"scale": 0.0}, "number > 0. Received: scale=0.0"),
     ({"scale": "1"}, "number > 0. Received: scale='1'"),
     ({"gradient_accumulation_steps": 0}, "Received: gradient_accumulation_steps=0")],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformerSchedule(**{"hidden_dim": 8, **kwargs})


def test_serializes():
    schedule = TransformerSchedule(256, warmup_steps=1000, scale=0.5)
    assert schedule.get_config() == {
        "hidden_dim": 256, "warmup_steps": 1000, "scale": 0.5, "gradient_accumulation_steps": 1,
    }
    serialized = keras.optimizers.schedules.serialize(schedule)
    restored = keras.optimizers.schedules.deserialize(serialized)
    assert isinstance(restored, TransformerSchedule)
    assert restored.get_config() == schedule.get_config()
    assert float(restored(123)) == float(schedule(123))


def test_counts_updates_when_gradients_are_accumulated():
    """Keras optimizers pass the number of batches; k batches make one update."""
    schedule = TransformerSchedule(64, warmup_steps=10, gradient_accumulation_steps=4)
    for batch in [0, 3, 4, 39, 40, 41, 1000]:
        np.testing.assert_allclose(float(schedule(batch)), reference_rate(batch // 4, 64, 10),
                                   rtol=1e-5)
    serialized = keras.optimizers.schedules.serialize(schedule)
    assert keras.optimizers.schedules.deserialize(serialized).gradient_accumulation_steps == 4


def test_configs_saved_before_gradient_accumulation_still_load():
    schedule = TransformerSchedule.from_config({"hidden_dim": 8, "warmup_steps": 5, "scale": 1.0})
    assert schedule.gradient_accumulation_steps == 1
