"""The compiled greedy loop converts to TFLite with builtin ops only.

What the export builds on: the encoder and the whole decoding loop, traced
for a fixed batch and source length, convert with
`target_spec.supported_ops = [TFLITE_BUILTINS]` (no Select TF ops):
`ops.slice_update` (XlaDynamicUpdateSlice) becomes DYNAMIC_UPDATE_SLICE, the
attention einsums BATCH_MATMUL and TRANSPOSE, the while loop with its
boolean condition WHILE. The weights must be frozen to constants first: the
converter leaves variables read inside the loop body as READ_VARIABLE ops
that fail at run time ("variable != nullptr").
"""

import io
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from decoding_reference import END, START, build_model, mixed_length_source
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from keras_transformer.decoding import greedy_search
from keras_transformer.decoding.greedy import greedy_loop

MAX_LENGTH = 8


def _builtin_ops(flatbuffer):
    report = io.StringIO()
    with redirect_stdout(report):
        tf.lite.experimental.Analyzer.analyze(model_content=flatbuffer)
    return {line.split("Op#")[1].split()[1].split("(")[0]
            for line in report.getvalue().splitlines() if "Op#" in line}


@pytest.mark.parametrize(
    "config",
    [
        {"tie_embeddings": True, "position_encoding": "sinusoidal"},
        {"tie_embeddings": False, "position_encoding": "learned", "normalize_first": True},
    ],
    ids=["tied-sinusoidal", "untied-learned-prenorm"],
)
def test_greedy_loop_converts_to_builtin_tflite_ops_and_matches_keras(config):
    model = build_model(**config, seed=7)
    source = mixed_length_source()
    decode = tf.function(
        lambda encoder_token_ids: greedy_loop(
            model, encoder_token_ids, start_token_id=START, end_token_id=END,
            max_length=MAX_LENGTH,
        ),
        input_signature=[tf.TensorSpec(source.shape, tf.int32)],
    )
    frozen = convert_variables_to_constants_v2(decode.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()

    ops = _builtin_ops(flatbuffer)
    assert {"WHILE", "DYNAMIC_UPDATE_SLICE"} <= ops
    assert not any("FLEX" in op or "CUSTOM" in op or "VARIABLE" in op for op in ops), ops

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], source)
    interpreter.invoke()
    outputs = [interpreter.get_tensor(detail["index"])
               for detail in interpreter.get_output_details()]
    tokens = next(output for output in outputs if output.ndim == 2)
    num_steps = next(output for output in outputs if output.ndim == 0)
    expected, _ = greedy_search(
        model, source, start_token_id=START, end_token_id=END, max_length=MAX_LENGTH
    )
    np.testing.assert_array_equal(tokens[:, :num_steps], expected)
