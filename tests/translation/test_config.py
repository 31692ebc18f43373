import dataclasses
import json

import pytest

from keras_transformer.translation import RECIPES, TranslationConfig, resolve_config


def test_recipes_resolve_by_name():
    for name, recipe in RECIPES.items():
        assert resolve_config(name) == recipe
    assert resolve_config("tiny", {"epochs": 1}).epochs == 1


def test_json_file_overrides_its_recipe(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"recipe": "tiny", "hidden_dim": 64}))
    config = resolve_config(str(path))
    assert config == dataclasses.replace(RECIPES["tiny"], hidden_dim=64)


def test_json_file_defaults_to_the_small_recipe(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": 3}))
    assert resolve_config(str(path)) == dataclasses.replace(RECIPES["small"], epochs=3)


def test_unknown_key_names_the_key_and_the_known_ones(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hiden_dim": 64}))
    with pytest.raises(ValueError, match=r"unknown config keys \['hiden_dim'\].*hidden_dim"):
        resolve_config(str(path))


@pytest.mark.parametrize(
    "text, message",
    [("{not json", "not a valid JSON config"), ("[1, 2]", "expected a JSON object"),
     ('{"recipe": "huge"}', "unknown recipe 'huge'")],
)
def test_malformed_json_files(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        resolve_config(str(path))


def test_neither_recipe_nor_file():
    with pytest.raises(ValueError, match=r"one of \['base', 'small', 'tiny'\].*'huge'"):
        resolve_config("huge")


def test_json_round_trip_and_model_kwargs():
    config = RECIPES["tiny"]
    assert TranslationConfig.from_dict(json.loads(config.to_json())) == config
    assert config.model_kwargs()["hidden_dim"] == config.hidden_dim
    assert "batch_size" not in config.model_kwargs()


def test_tokenizer_field_defaults_to_wordpiece_for_old_config_files():
    values = dataclasses.asdict(RECIPES["tiny"])
    del values["tokenizer"]  # a config.json written before the field existed
    assert TranslationConfig.from_dict(values).tokenizer == "wordpiece"
    values["tokenizer"] = "sentencepiece"
    assert TranslationConfig.from_dict(values).tokenizer == "sentencepiece"
    values["tokenizer"] = "bpe"
    with pytest.raises(ValueError, match=r"`tokenizer` must be one of \['sentencepiece', "
                       r"'wordpiece'\]\. Received: tokenizer='bpe'"):
        TranslationConfig.from_dict(values)


def test_optimizer_kwargs_build_the_recipe_optimizer():
    from keras_transformer.training import transformer_adam

    averaged = transformer_adam(**RECIPES["small"].optimizer_kwargs())
    assert averaged.use_ema and averaged.ema_momentum == RECIPES["small"].ema_momentum
    without = dataclasses.replace(RECIPES["small"], ema_momentum=0.0)
    plain = transformer_adam(**without.optimizer_kwargs())
    assert not plain.use_ema
    schedule = plain.get_config()["learning_rate"]["config"]
    assert schedule["warmup_steps"] == RECIPES["small"].warmup_steps
    assert schedule["hidden_dim"] == RECIPES["small"].hidden_dim


@pytest.mark.parametrize("momentum", [1.0, -0.1, "0.9", True])
def test_rejects_a_bad_ema_momentum(momentum):
    with pytest.raises(ValueError, match=r"`ema_momentum` must be a float in \[0, 1\)"):
        TranslationConfig(ema_momentum=momentum)


IMPORTED_MODEL_FIELDS = {
    "activation": "silu", "sinusoidal_layout": "concatenated", "scale_embeddings": False,
    "use_output_bias": True, "share_embeddings": True,
}


def test_imported_model_fields_default_to_the_paper_for_old_config_files():
    values = dataclasses.asdict(RECIPES["tiny"])
    for name in IMPORTED_MODEL_FIELDS:
        del values[name]  # a config.json written before the fields existed
    kwargs = TranslationConfig.from_dict(values).model_kwargs()
    assert {name: kwargs[name] for name in IMPORTED_MODEL_FIELDS} == {
        "activation": "relu", "sinusoidal_layout": "interleaved", "scale_embeddings": True,
        "use_output_bias": False, "share_embeddings": False,
    }
    config = TranslationConfig(**IMPORTED_MODEL_FIELDS)
    assert TranslationConfig.from_dict(json.loads(config.to_json())) == config
    assert {name: config.model_kwargs()[name] for name in IMPORTED_MODEL_FIELDS} == (
        IMPORTED_MODEL_FIELDS
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("activation", "tanh", r"`activation` must be one of \['gelu', 'relu', 'silu'\]"),
        ("sinusoidal_layout", "split", r"`sinusoidal_layout` must be one of"),
        ("use_output_bias", 1, r"`use_output_bias` must be true or false\. Received: "
                               r"use_output_bias=1"),
    ],
)
def test_imported_model_fields_are_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        TranslationConfig(**{field: value})


def test_dtype_policy_defaults_to_float32_and_is_checked():
    values = dataclasses.asdict(RECIPES["small"])
    del values["dtype_policy"]  # a config.json written before the field existed
    assert TranslationConfig.from_dict(values).dtype_policy == "float32"
    assert "dtype_policy" not in TranslationConfig().model_kwargs()
    assert RECIPES["small"].dtype_policy == "auto" and RECIPES["tiny"].dtype_policy == "float32"
    with pytest.raises(ValueError, match=r"`dtype_policy` must be one of \['auto', 'float32', "
                       r"'mixed_bfloat16'\]\. Received: dtype_policy='mixed_float16'"):
        TranslationConfig(dtype_policy="mixed_float16")
