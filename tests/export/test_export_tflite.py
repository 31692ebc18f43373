"""The .tflite export: builtin ops only, parity with the Keras greedy search,
the encode / decode_step signatures, and the quantized variants' accuracy
and size on a trained tiny translator."""

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.tools import flatbuffer_utils

from keras_transformer import build_seq2seq_transformer
from keras_transformer.data import END_ID, START_ID, detokenize
from keras_transformer.decoding import greedy_search
from keras_transformer.export import export_tflite
from keras_transformer.training import dtype_policy_scope

MAX_INPUT_LENGTH = MAX_OUTPUT_LENGTH = 24


@pytest.fixture(scope="module")
def tflite_paths(translator, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tflite")
    return {
        quantization: export_tflite(
            translator.model,
            directory / f"translator_{quantization}.tflite",
            quantization=quantization,
            max_input_length=MAX_INPUT_LENGTH,
            max_output_length=MAX_OUTPUT_LENGTH,
        )
        for quantization in ("none", "float16", "dynamic_range")
    }


@pytest.fixture(scope="module")
def test_ids(translator):
    sources = [source for source, _ in translator.test_pairs]
    return translator.encoder_token_ids(sources, length=MAX_INPUT_LENGTH)


def _translate(path, encoder_token_ids) -> np.ndarray:
    """int32 (B, L) tokens, one sentence per invocation (batch size 1)."""
    translate = Interpreter(model_path=str(path)).get_signature_runner("translate")
    return np.concatenate(
        [translate(encoder_token_ids=row[None])["token_ids"] for row in encoder_token_ids]
    )


def _keras_greedy(model, encoder_token_ids) -> np.ndarray:
    tokens, _ = greedy_search(
        model, encoder_token_ids, start_token_id=START_ID, end_token_id=END_ID,
        max_length=MAX_OUTPUT_LENGTH,
    )
    tokens = tokens.numpy()
    return np.pad(tokens, ((0, 0), (0, MAX_OUTPUT_LENGTH - tokens.shape[1])))


def _op_names(path) -> set[str]:
    report = io.StringIO()
    with redirect_stdout(report):
        tf.lite.experimental.Analyzer.analyze(model_path=str(path))
    return {
        line.split("Op#")[1].split()[1].split("(")[0]
        for line in report.getvalue().splitlines()
        if "Op#" in line
    }


def _decode_step_tables(path, shape: tuple) -> tuple[int, dict[str, set[int]]]:
    """In the decode_step subgraph: how many `shape` constants are stored,
    and the buffers of the `shape` inputs that each op type reads."""
    model = flatbuffer_utils.read_model(str(path))
    index = next(
        definition.subgraphIndex for definition in model.signatureDefs
        if definition.signatureKey.decode() == "decode_step"
    )
    subgraph = model.subgraphs[index]
    tensors = [tensor for tensor in subgraph.tensors if tuple(tensor.shape) == shape]
    stored = {
        tensor.buffer for tensor in tensors if model.buffers[tensor.buffer].data is not None
    }
    readers = {}
    for operator in subgraph.operators:
        name = flatbuffer_utils.opcode_to_name(model, operator.opcodeIndex)
        for tensor in operator.inputs:
            if tensor >= 0 and tuple(subgraph.tensors[tensor].shape) == shape:
                readers.setdefault(name, set()).add(subgraph.tensors[tensor].buffer)
    return len(stored), readers


def _weight_bytes(path) -> int:
    """Bytes of the constant buffers (the weights) of a .tflite."""
    model = flatbuffer_utils.read_model(str(path))
    return sum(len(buffer.data) for buffer in model.buffers if buffer.data is not None)


@pytest.mark.parametrize("quantization", ["none", "float16", "dynamic_range"])
def test_builtin_ops_only_and_three_signatures(tflite_paths, quantization):
    path = tflite_paths[quantization]
    ops = _op_names(path)
    assert "WHILE" in ops
    assert not any("FLEX" in op or "CUSTOM" in op or "VARIABLE" in op for op in ops), ops
    signatures = Interpreter(model_path=str(path)).get_signature_list()
    assert signatures["translate"] == {
        "inputs": ["encoder_token_ids"], "outputs": ["num_steps", "token_ids"]
    }
    assert set(signatures) == {"translate", "encode", "decode_step"}


def test_float32_tokens_equal_keras_greedy_search(translator, tflite_paths, test_ids):
    expected = _keras_greedy(translator.model, test_ids)
    np.testing.assert_array_equal(_translate(tflite_paths["none"], test_ids), expected)


def test_encode_and_decode_step_signatures_reproduce_translate(translator, tflite_paths, test_ids):
    interpreter = Interpreter(model_path=str(tflite_paths["none"]))
    encode = interpreter.get_signature_runner("encode")
    step = interpreter.get_signature_runner("decode_step")
    step_inputs = interpreter.get_signature_list()["decode_step"]["inputs"]
    details = step.get_input_details()
    expected = _keras_greedy(translator.model, test_ids[:5])
    for row, expected_tokens in zip(test_ids[:5], expected):
        state = encode(encoder_token_ids=row[None])
        for name in step_inputs:
            if name.startswith("self_attention_cache"):
                state[name] = np.zeros(details[name]["shape"], np.float32)
        token, tokens = START_ID, []
        for index in range(MAX_OUTPUT_LENGTH):
            state["token_ids"] = np.array([token], np.int32)
            state["index"] = np.array(index, np.int32)
            outputs = step(**{name: state[name] for name in step_inputs})
            state.update(outputs)
            logits = outputs["logits"][0]
            logits[0] = -np.inf  # padding is never generated
            token = int(np.argmax(logits))
            tokens.append(token)
            if token == END_ID:
                break
        np.testing.assert_array_equal(tokens, expected_tokens[: len(tokens)])


# Weights only: the file also holds the graph (about 50 KB here), which does
# not shrink. The float32 constants (biases, LayerNorms, the sinusoidal table,
# the zero caches) stay float32, hence more than 0.25 and 0.5.
@pytest.mark.parametrize(
    "quantization, min_agreement, max_weight_ratio",
    [("float16", 0.95, 0.55), ("dynamic_range", 0.8, 0.29)],
)
def test_quantized_variants_keep_bleu_and_shrink_weights(
    translator, tflite_paths, test_ids, bleu_score, quantization, min_agreement, max_weight_ratio
):
    references = [reference for _, reference in translator.test_pairs]
    float_tokens = _translate(tflite_paths["none"], test_ids)
    tokens = _translate(tflite_paths[quantization], test_ids)
    agreement = np.mean([np.array_equal(a, b) for a, b in zip(tokens, float_tokens)])
    float_bleu = bleu_score(detokenize(translator.target_tokenizer, float_tokens), references)
    bleu = bleu_score(detokenize(translator.target_tokenizer, tokens), references)
    assert agreement >= min_agreement, agreement
    assert bleu >= 0.98 * float_bleu, (bleu, float_bleu)
    ratio = _weight_bytes(tflite_paths[quantization]) / _weight_bytes(tflite_paths["none"])
    assert ratio <= max_weight_ratio, ratio


@pytest.mark.parametrize("quantization", ["none", "float16", "dynamic_range"])
def test_tied_embedding_is_stored_once(translator, tflite_paths, quantization):
    embedding = translator.model.decoder_embedding
    shape = (embedding.vocabulary_size, embedding.embedding_dim)  # (V, D)
    stored, readers = _decode_step_tables(tflite_paths[quantization], shape)
    # The lookup and the output projection read the same table (float16:
    # the table dequantized once per step).
    assert stored == 1, readers
    assert len(readers["GATHER"]) == 1 and readers["GATHER"] == readers["FULLY_CONNECTED"]


def test_rejects_unknown_quantization(translator, tmp_path):
    with pytest.raises(ValueError, match="quantization"):
        export_tflite(translator.model, tmp_path / "model.tflite", quantization="int4")


def test_a_mixed_bfloat16_model_exports_as_its_float32_copy(translator, test_ids, tmp_path):
    config = json.loads((translator.run_dir / "config.json").read_text())
    sizes = ("num_layers", "hidden_dim", "num_heads", "intermediate_dim", "max_sequence_length")
    with dtype_policy_scope("mixed_bfloat16"):
        mixed = build_seq2seq_transformer(
            translator.model.source_vocabulary_size, translator.model.target_vocabulary_size,
            **{name: config[name] for name in sizes},
        )
    mixed.set_weights(translator.model.get_weights())
    assert mixed.parts_compute_dtype == "bfloat16"
    path = export_tflite(
        mixed, tmp_path / "mixed.tflite",
        max_input_length=MAX_INPUT_LENGTH, max_output_length=MAX_OUTPUT_LENGTH,
    )
    # The same float32 weights: the tokens of the float32 model.
    expected = _keras_greedy(translator.model, test_ids)
    np.testing.assert_array_equal(_translate(path, test_ids), expected)
