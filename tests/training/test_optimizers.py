import keras
import numpy as np

from keras_transformer.training import TransformerSchedule, transformer_adam


def test_has_the_paper_hyperparameters():
    optimizer = transformer_adam(hidden_dim=512)
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.beta_1 == 0.9
    assert optimizer.beta_2 == 0.98
    assert optimizer.epsilon == 1e-9
    config = optimizer.get_config()
    schedule = keras.optimizers.schedules.deserialize(config["learning_rate"])
    assert isinstance(schedule, TransformerSchedule)
    assert schedule.get_config() == {"hidden_dim": 512, "warmup_steps": 4000, "scale": 1.0}


def test_passes_schedule_arguments_and_extra_keywords():
    optimizer = transformer_adam(hidden_dim=64, warmup_steps=10, scale=2.0, clipnorm=1.0)
    assert optimizer.clipnorm == 1.0
    first_rate = 2.0 * 64**-0.5 * 10**-1.5  # scale * D^-0.5 * step * warmup^-1.5, step 1
    np.testing.assert_allclose(float(optimizer.learning_rate), first_rate, rtol=1e-5)


def test_round_trips_through_keras_serialization():
    optimizer = transformer_adam(hidden_dim=64, warmup_steps=10)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert (restored.beta_2, restored.epsilon) == (0.98, 1e-9)
    np.testing.assert_allclose(float(restored.learning_rate), float(optimizer.learning_rate))
