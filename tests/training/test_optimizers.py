import keras
import numpy as np

from keras_transformer.training import TransformerSchedule, transformer_adam


def test_has_the_paper_hyperparameters():
    optimizer = transformer_adam(hidden_dim=512)
    assert isinstance(optimizer, keras.optimizers.Adam)  # a DenseGradientAdam
    assert optimizer.beta_1 == 0.9
    assert optimizer.beta_2 == 0.98
    assert optimizer.epsilon == 1e-9
    config = optimizer.get_config()
    schedule = keras.optimizers.schedules.deserialize(config["learning_rate"])
    assert isinstance(schedule, TransformerSchedule)
    assert schedule.get_config() == {
        "hidden_dim": 512, "warmup_steps": 4000, "scale": 1.0, "gradient_accumulation_steps": 1,
    }


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


def test_gradient_accumulation_is_passed_to_adam():
    optimizer = transformer_adam(hidden_dim=64, gradient_accumulation_steps=4)
    assert optimizer.gradient_accumulation_steps == 4
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored.gradient_accumulation_steps == 4
    assert transformer_adam(hidden_dim=64).gradient_accumulation_steps is None


def _accumulation_data():
    """8 rows; every pair of rows holds 6 non-padding labels, so each micro-batch
    of 2 rows weighs its tokens exactly as one batch of 8 rows does."""
    rng = np.random.default_rng(7)
    lengths = [4, 2, 3, 3, 1, 5, 5, 1]
    source = np.zeros((8, 6), "int32")
    labels = np.zeros((8, 6), "int32")
    for row, length in enumerate(lengths):
        source[row, : 6 - row % 3] = rng.integers(3, 20, 6 - row % 3)
        labels[row, :length] = rng.integers(3, 20, length)
    shifted = np.pad(labels, ((0, 0), (1, 0)), constant_values=1)[:, :-1]  # start id 1
    decoder_inputs = np.where(labels != 0, shifted, 0)
    return {"encoder_token_ids": source, "decoder_token_ids": decoder_inputs}, labels


def _train(optimizer, batch_size, inputs, labels):
    from keras_transformer import build_seq2seq_transformer
    from keras_transformer.training import MaskedSparseCategoricalCrossentropy

    keras.utils.set_random_seed(3)
    model = build_seq2seq_transformer(
        20, 20, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0,
        max_sequence_length=8,
    )
    model.compile(optimizer=optimizer, loss=MaskedSparseCategoricalCrossentropy())
    model.fit(inputs, labels, batch_size=batch_size, epochs=3, shuffle=False, verbose=0)
    return model


def test_accumulated_gradients_equal_the_big_batch_gradient():
    inputs, labels = _accumulation_data()
    big = _train(keras.optimizers.SGD(0.1), 8, inputs, labels)
    accumulated = _train(
        keras.optimizers.SGD(0.1, gradient_accumulation_steps=4), 2, inputs, labels
    )
    for expected, actual in zip(big.trainable_weights, accumulated.trainable_weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(actual),
                                   keras.ops.convert_to_numpy(expected), atol=1e-6,
                                   err_msg=expected.path)


def test_transformer_adam_accumulating_micro_batches_trains_like_one_big_batch():
    """4 micro-batches of 2 rows, 3 updates, against 3 batches of 8 rows.

    Compared through the model's logits: Adam divides each gradient by its own
    size, so parameters whose exact gradient is zero (the key biases, the
    padding embedding) move by +-lr on float32 rounding noise, in different
    directions in the two runs, without changing any real token's logits.
    """
    inputs, labels = _accumulation_data()
    big = _train(transformer_adam(16, warmup_steps=4), 8, inputs, labels)
    accumulated = _train(
        transformer_adam(16, warmup_steps=4, gradient_accumulation_steps=4), 2, inputs, labels
    )
    assert int(big.optimizer.iterations) == int(accumulated.optimizer.iterations) == 3
    np.testing.assert_allclose(float(accumulated.optimizer.learning_rate),
                               float(big.optimizer.learning_rate), rtol=1e-6)
    real = labels != 0
    np.testing.assert_allclose(accumulated.predict(inputs, verbose=0)[real],
                               big.predict(inputs, verbose=0)[real], atol=1e-3)


def test_repeated_embedding_rows_get_the_exact_adam_update():
    """Token 1 looked up twice: the second moment uses the square of the summed
    gradient, as for the same gradient given densely."""
    import tensorflow as tf

    from keras_transformer.training.optimizers import DenseGradientAdam

    velocities = []
    for make_dense in (False, True):
        table = keras.Variable(np.zeros((3, 2), "float32"))
        optimizer = DenseGradientAdam(0.1)
        with tf.GradientTape() as tape:
            rows = tf.gather(table.value, [1, 1])
            loss = tf.reduce_sum(rows * tf.constant([[1.0, 1.0], [1.0, -3.0]]))
        gradient = tape.gradient(loss, table.value)
        assert isinstance(gradient, tf.IndexedSlices)
        if make_dense:
            gradient = tf.convert_to_tensor(gradient)
        optimizer.apply_gradients([(gradient, table)])
        velocities.append(optimizer.variables[-1].numpy())
    np.testing.assert_allclose(velocities[0][1], 0.001 * np.array([2.0, -2.0]) ** 2)
    np.testing.assert_allclose(velocities[0], velocities[1])
