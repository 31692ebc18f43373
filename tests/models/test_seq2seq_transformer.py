import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer import build_seq2seq_transformer
from keras_transformer.layers import (
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
)
from keras_transformer.layers.masks import get_keras_mask
from keras_transformer.models import DECODER_INPUT, ENCODER_INPUT
from keras_transformer.training import (
    MaskedSparseCategoricalCrossentropy,
    TransformerSchedule,
    dtype_policy_scope,
    transformer_adam,
)

SOURCE_VOCABULARY, TARGET_VOCABULARY = 20, 23
HIDDEN_DIM = 16


def to_numpy(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


def build(**kwargs):
    arguments = {
        "num_layers": 2, "hidden_dim": HIDDEN_DIM, "num_heads": 2, "intermediate_dim": 32,
        "dropout": 0.0, "max_sequence_length": 16, **kwargs,
    }
    return build_seq2seq_transformer(SOURCE_VOCABULARY, TARGET_VOCABULARY, **arguments)


def random_ids(rng, lengths, length, vocabulary_size):
    """Right-padded ids (B, length) with symbols 3 ... V-1 and 0 after `lengths`."""
    ids = rng.integers(3, vocabulary_size, (len(lengths), length)).astype("int32")
    return np.where(np.arange(length)[None] < np.asarray(lengths)[:, None], ids, 0)


def inputs(source, target):
    return {ENCODER_INPUT: source, DECODER_INPUT: target}


def logits(model, source, target):
    return to_numpy(model(inputs(source, target), training=False))


@pytest.fixture
def batch(rng):
    source = random_ids(rng, [7, 4, 1], 7, SOURCE_VOCABULARY)
    target = random_ids(rng, [6, 6, 2], 6, TARGET_VOCABULARY)
    return source, target


# --- structure ----------------------------------------------------------------


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_outputs_float32_logits_and_names_its_layers(batch, tie_embeddings):
    model = build(tie_embeddings=tie_embeddings)
    outputs = model(inputs(*batch))
    assert outputs.shape == (3, 6, TARGET_VOCABULARY)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    assert isinstance(model.encoder_embedding, TokenAndPositionEmbedding)
    assert isinstance(model.decoder_embedding, TokenAndPositionEmbedding)
    assert isinstance(model.encoder, TransformerEncoder)
    assert isinstance(model.decoder, TransformerDecoder)
    layer_names = {layer.name for layer in model.layers}
    assert ("logits" in layer_names) is not tie_embeddings


def test_tied_logits_project_onto_the_target_embedding(batch):
    model = build(tie_embeddings=True)
    untied = build(tie_embeddings=False)
    assert untied.count_params() - model.count_params() == (HIDDEN_DIM + 1) * TARGET_VOCABULARY
    source, target = batch
    embedding = model.decoder_embedding
    encoded = model.encoder(model.encoder_embedding(source))
    decoded = model.decoder(embedding(target), encoded)
    expected = to_numpy(decoded) @ to_numpy(embedding.embeddings).T
    np.testing.assert_allclose(logits(model, source, target), expected, atol=1e-4)


def test_layer_counts_can_differ_between_encoder_and_decoder():
    model = build(num_layers=2, num_encoder_layers=3, num_decoder_layers=1)
    assert len(model.encoder.blocks) == 3
    assert len(model.decoder.blocks) == 1


def test_dropout_only_in_training(batch):
    model = build(dropout=0.3)
    source, target = batch
    inference = logits(model, source, target)
    np.testing.assert_array_equal(inference, logits(model, source, target))
    training = to_numpy(model(inputs(source, target), training=True))
    assert not np.allclose(training, inference, atol=1e-3)


# --- causality, padding and masks ---------------------------------------------


@pytest.mark.parametrize("normalize_first", [False, True])
def test_later_decoder_tokens_do_not_change_earlier_logits(batch, rng, normalize_first):
    model = build(normalize_first=normalize_first)
    source, target = batch
    before = logits(model, source, target)
    for position in range(1, target.shape[1]):
        changed = target.copy()
        changed[:, position:] = rng.integers(3, TARGET_VOCABULARY, changed[:, position:].shape)
        after = logits(model, source, changed)
        np.testing.assert_allclose(after[:, :position], before[:, :position], atol=1e-5)
        assert not np.allclose(after[0, position:], before[0, position:], atol=1e-4)


PADDING_VARIANTS = [
    {"normalize_first": False, "tie_embeddings": True},
    {"normalize_first": False, "tie_embeddings": False},
    {"normalize_first": True, "tie_embeddings": True},
    {"normalize_first": True, "tie_embeddings": False, "position_encoding": "learned"},
]


@pytest.mark.parametrize("variant", PADDING_VARIANTS)
def test_appended_padding_leaves_real_logits_unchanged(batch, variant):
    model = build(**variant)
    source, target = batch
    real = target != 0
    before = logits(model, source, target)
    padded_source = np.pad(source, ((0, 0), (0, 4)))
    padded_target = np.pad(target, ((0, 0), (0, 3)))
    np.testing.assert_allclose(logits(model, padded_source, target)[real], before[real], atol=1e-5)
    after = logits(model, padded_source, padded_target)
    np.testing.assert_allclose(after[:, :6][real], before[real], atol=1e-5)


def test_source_padding_is_not_attended(batch, rng):
    """Ids after the first 0 are padding: whatever the encoder computes for
    them must not reach the decoder, here checked on the encoder outputs."""
    model = build()
    source, target = batch
    mask = source != 0
    encoder_embedding = model.encoder_embedding
    decoder_embedding = model.decoder_embedding
    encoded = to_numpy(model.encoder(encoder_embedding(source)))
    noise = np.where(mask[..., None], encoded, rng.normal(size=encoded.shape)).astype("float32")
    decoder = model.decoder
    before = decoder(decoder_embedding(target), encoded, encoder_padding_mask=mask)
    after = decoder(decoder_embedding(target), noise, encoder_padding_mask=mask)
    np.testing.assert_allclose(to_numpy(after), to_numpy(before), atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(decoder_embedding(before, reverse=True)), logits(model, source, target), atol=1e-5
    )


def test_masks_propagate_through_the_functional_model(batch):
    model = build()
    probe = keras.Model(
        model.inputs,
        [model.encoder_embedding.output, model.encoder.output,
         model.decoder.output, model.output],
    )
    source, target = batch
    embedded, encoded, decoded, outputs = probe(inputs(source, target))
    pairs = [(embedded, source), (encoded, source), (decoded, target), (outputs, target)]
    for tensor, ids in pairs:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(get_keras_mask(tensor)), ids != 0)
    np.testing.assert_array_equal(to_numpy(outputs), logits(model, source, target))


def test_encoder_reads_the_embedding_mask(batch):
    model = build()
    source, _ = batch
    embedded = model.encoder_embedding(source)
    encoder = model.encoder
    unmasked = keras.ops.convert_to_tensor(to_numpy(embedded))
    np.testing.assert_array_equal(
        to_numpy(encoder(embedded)), to_numpy(encoder(unmasked, padding_mask=source != 0))
    )
    assert not np.allclose(to_numpy(encoder(embedded))[1], to_numpy(encoder(unmasked))[1])


@pytest.mark.parametrize("variant", [{"tie_embeddings": True},
                                     {"tie_embeddings": False, "normalize_first": True}])
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1")
def test_cached_decoding_with_the_model_layers_equals_full_logits(batch, variant):
    model = build(**variant)
    source, target = batch
    encoder_embedding = model.encoder_embedding
    decoder_embedding = model.decoder_embedding
    decoder = model.decoder
    encoded = model.encoder(encoder_embedding(source))
    cross_attention_cache = decoder.compute_cross_attention_cache(encoded)
    cache = decoder.init_self_attention_cache(len(target), target.shape[1])
    steps = []
    for index in range(target.shape[1]):
        x = decoder_embedding(target[:, index : index + 1], start_index=index)
        x, cache = decoder(x, encoder_padding_mask=source != 0, self_attention_cache=cache,
                           self_attention_cache_update_index=index,
                           cross_attention_cache=cross_attention_cache)
        if variant["tie_embeddings"]:
            steps.append(to_numpy(decoder_embedding(x, reverse=True)))
        else:
            steps.append(to_numpy(model.output_layers[-1](x)))
    real = target != 0
    full = logits(model, source, target)
    np.testing.assert_allclose(np.concatenate(steps, axis=1)[real], full[real], atol=1e-5)


# --- configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_dim": 10, "num_heads": 3}, "hidden_dim=10, num_heads=3"),
        ({"num_layers": 0}, "num_layers=0"),
        ({"num_encoder_layers": -2}, "num_encoder_layers=-2"),
        ({"num_encoder_layers": 0}, "num_encoder_layers=0"),
        ({"num_decoder_layers": 0}, "num_decoder_layers=0"),
        ({"hidden_dim": 0}, "hidden_dim=0"),
        ({"intermediate_dim": 3.5}, "intermediate_dim=3.5"),
        ({"max_sequence_length": 0}, "max_sequence_length=0"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"dropout": -0.1}, "dropout=-0.1"),
        ({"position_encoding": "rotary"}, "position_encoding='rotary'"),
    ],
)
def test_rejects_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


def test_rejects_bad_vocabulary_size():
    with pytest.raises(ValueError, match="source_vocabulary_size=0"):
        build_seq2seq_transformer(0, 10)


def test_rejects_sequences_beyond_learned_positions(rng):
    model = build(position_encoding="learned", max_sequence_length=8)
    short = random_ids(rng, [8], 8, SOURCE_VOCABULARY)
    long = random_ids(rng, [9], 9, SOURCE_VOCABULARY)
    assert model(inputs(short, short)).shape == (1, 8, TARGET_VOCABULARY)
    with pytest.raises(ValueError, match="length 9 starting at position 0"):
        model(inputs(long, short))


def test_rejects_float_ids_in_the_embedding():
    model = build()
    with pytest.raises(ValueError, match="integer token ids"):
        model.encoder_embedding(np.ones((1, 3), "float32"))


# --- serialization ------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        {"tie_embeddings": True},
        {"tie_embeddings": False, "position_encoding": "learned"},
        {"tie_embeddings": True, "position_encoding": "learned", "normalize_first": True},
        {"tie_embeddings": False, "normalize_first": True, "num_decoder_layers": 1},
    ],
)
def test_keras_file_round_trip_reproduces_outputs(batch, variant, save_and_load):
    model = build(dropout=0.1, **variant)
    restored = save_and_load(model)
    source, target = batch
    np.testing.assert_array_equal(logits(restored, source, target), logits(model, source, target))
    assert json.dumps(restored.get_config()) == json.dumps(model.get_config())
    assert len(restored.decoder.blocks) == len(model.decoder.blocks)


def test_keras_file_round_trip_keeps_the_training_setup(batch, save_and_load):
    model = build()
    model.compile(
        optimizer=transformer_adam(HIDDEN_DIM, warmup_steps=10),
        loss=MaskedSparseCategoricalCrossentropy(label_smoothing=0.2),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        run_eagerly=True,
    )
    source, target = batch
    model.fit(inputs(source, target), np.roll(target, -1, axis=1), epochs=1, verbose=0)
    restored = save_and_load(model)
    np.testing.assert_array_equal(logits(restored, source, target), logits(model, source, target))
    optimizer_config = restored.optimizer.get_config()
    assert (optimizer_config["beta_2"], optimizer_config["epsilon"]) == (0.98, 1e-9)
    schedule = keras.optimizers.schedules.deserialize(optimizer_config["learning_rate"])
    assert isinstance(schedule, TransformerSchedule)
    assert schedule.get_config() == {
        "hidden_dim": HIDDEN_DIM, "warmup_steps": 10, "scale": 1.0, "gradient_accumulation_steps": 1
    }
    assert int(restored.optimizer.iterations) == 1
    assert restored.loss.label_smoothing == 0.2


# --- mixed precision and training ---------------------------------------------


@pytest.mark.parametrize(
    "dtype_policy, variant",
    [("mixed_float16", {"normalize_first": False, "tie_embeddings": False}),
     ("mixed_bfloat16", {"normalize_first": True, "tie_embeddings": True})],
    indirect=["dtype_policy"],
)
def test_mixed_precision_with_a_fully_padded_row(batch, dtype_policy, variant):
    model = build(num_layers=1, **variant)
    assert model.decoder.compute_dtype == dtype_policy.removeprefix("mixed_")
    source, target = batch
    source[1], target[1] = 0, 0  # a whole row of padding
    outputs = model(inputs(source, target))
    assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
    assert np.isfinite(to_numpy(outputs)).all()

    model.compile(optimizer="adam", loss=MaskedSparseCategoricalCrossentropy(), run_eagerly=True)
    is_loss_scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert is_loss_scaled == (dtype_policy == "mixed_float16")
    labels = np.roll(target, -1, axis=1)
    history = model.fit(inputs(source, target), labels, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert int(model.optimizer.iterations) == 2
    assert all(np.isfinite(to_numpy(w)).all() for w in model.weights)
    assert np.isfinite(to_numpy(model(inputs(source, target)))).all()


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_float32_copy_of_a_bfloat16_model_keeps_the_weights(batch, tie_embeddings):
    with dtype_policy_scope("mixed_bfloat16"):
        model = build(num_layers=1, tie_embeddings=tie_embeddings)
    assert model.parts_compute_dtype == "bfloat16"
    copy = model.float32_copy()
    assert copy.parts_compute_dtype == "float32" and copy is not model
    assert {layer.compute_dtype for layer in copy._flatten_layers()} == {"float32"}
    for ours, theirs in zip(model.weights, copy.weights, strict=True):
        assert ours.path == theirs.path
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
    source, target = batch
    reference = build(num_layers=1, tie_embeddings=tie_embeddings)  # float32 from the start
    reference.set_weights(model.get_weights())
    np.testing.assert_array_equal(logits(copy, source, target), logits(reference, source, target))
    # bfloat16 math rounds: the mixed model's logits are close, not equal.
    assert np.abs(logits(model, source, target) - logits(copy, source, target)).max() < 0.1
    assert build(num_layers=1).parts_compute_dtype == "float32"


def copy_task_dataset(rng, count=48, batch_size=16):
    source = random_ids(rng, rng.integers(2, 7, count), 6, SOURCE_VOCABULARY)
    target = np.minimum(source, TARGET_VOCABULARY - 1)
    decoder_inputs = np.pad(target, ((0, 0), (1, 0)), constant_values=1)[:, :-1]
    decoder_inputs = np.where(target != 0, decoder_inputs, 0)
    dataset = tf.data.Dataset.from_tensor_slices((inputs(source, decoder_inputs), target))
    return dataset.shuffle(count, seed=0).batch(batch_size)


@pytest.mark.parametrize("execution", [{"run_eagerly": True}, {"jit_compile": True}])
def test_fits_a_tf_data_dataset(rng, execution):
    model = build(num_layers=1)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=MaskedSparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        **execution,
    )
    history = model.fit(copy_task_dataset(rng), epochs=3, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    assert history.history["accuracy"][-1] > history.history["accuracy"][0]


def test_keras_accuracy_skips_padding_because_the_logits_carry_the_mask(rng):
    """Why the library has no accuracy metric of its own (issue 22): the logits
    carry the Keras mask of the decoder ids, so `SparseCategoricalAccuracy`
    counts only the non-padding positions of right-padded labels."""
    model = build(num_layers=1)
    model.compile(
        loss=MaskedSparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    source = random_ids(rng, [5, 2, 6, 3], 6, SOURCE_VOCABULARY)
    decoder_inputs = random_ids(rng, [6, 3, 1, 4], 6, TARGET_VOCABULARY)
    predictions = logits(model, source, decoder_inputs).argmax(-1)  # (B, T)
    # Labels: the prediction at even positions, another id at odd ones, 0 after the end.
    right = np.where(predictions == 0, 3, predictions)
    wrong = np.where(predictions == TARGET_VOCABULARY - 1, 3, predictions + 1)
    labels = np.where(np.arange(6) % 2 == 0, right, wrong)
    labels = np.where(decoder_inputs != 0, labels, 0).astype("int32")
    real = labels != 0
    expected = (predictions == labels)[real].mean()
    assert not np.isclose((predictions == labels).mean(), expected)  # padding would show

    results = model.evaluate(inputs(source, decoder_inputs), labels, return_dict=True, verbose=0)
    np.testing.assert_allclose(results["accuracy"], expected, rtol=1e-6)


def test_shared_embeddings_are_one_table_used_three_ways(save_and_load):
    model = build_seq2seq_transformer(
        TARGET_VOCABULARY, TARGET_VOCABULARY, num_layers=1, hidden_dim=HIDDEN_DIM,
        num_heads=2, intermediate_dim=32, dropout=0.0, share_embeddings=True,
        use_output_bias=True, activation="silu", sinusoidal_layout="concatenated",
    )
    assert model.encoder_embedding is model.decoder_embedding
    assert [w.path for w in model.weights[:2]] == ["embedding/embeddings", "embedding/output_bias"]
    model.decoder_embedding.output_bias.assign(np.linspace(-1, 1, TARGET_VOCABULARY))
    ids = random_ids(np.random.default_rng(0), [5, 3], 6, TARGET_VOCABULARY)
    restored = save_and_load(model)
    assert restored.encoder_embedding is restored.decoder_embedding
    np.testing.assert_allclose(
        to_numpy(restored(inputs(ids, ids))), to_numpy(model(inputs(ids, ids))), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"share_embeddings": True}, r"`share_embeddings=True` uses one table .* Received 20 "
                                     r"and 23"),
        ({"use_output_bias": True, "tie_embeddings": False},
         r"`use_output_bias=True` .* needs `tie_embeddings=True`"),
    ],
)
def test_rejects_shared_or_biased_embeddings_that_cannot_be(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)
