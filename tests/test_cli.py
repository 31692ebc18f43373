"""The `keras-transformer` command line: a short train -> translate -> evaluate ->
attention run on a tiny generated corpus, and user mistakes (exit code 2)."""

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from keras_transformer.cli import main
from keras_transformer.data import generate_pairs

from export.clean_process import run_in_clean_process

TINY_CONFIG = {
    "recipe": "tiny", "num_layers": 1, "hidden_dim": 32, "num_heads": 2,
    "intermediate_dim": 64, "dropout": 0.0, "max_sequence_length": 16,
    "source_vocabulary_size": 300, "target_vocabulary_size": 300, "batch_size": 32,
    "epochs": 1, "warmup_steps": 20, "beam_size": 2,
    "ema_momentum": 0.0,  # a few steps: no weight average (the tiny recipe's spans ~1000)
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    corpus = directory / "corpus.tsv"
    pairs = generate_pairs(num_pairs=300, seed=5)
    corpus.write_text("".join(f"{en}\t{fr}\n" for fr, en in pairs), encoding="utf-8")
    config = directory / "config.json"
    config.write_text(json.dumps(TINY_CONFIG))
    return directory, corpus, config


@pytest.fixture(scope="module")
def trained(files):
    """Trains through the CLI once; returns (run_dir, what train printed)."""
    directory, corpus, config = files
    run_dir = directory / "run"
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = main(["train", "--output-dir", str(run_dir), "--data", str(corpus),
                     "--config", str(config), "--epochs", "1"])
    assert code == 0
    return run_dir, output.getvalue()


@pytest.fixture(scope="module")
def run_dir(trained):
    return trained[0]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_prints_scores_and_translations(trained):
    run_dir, out = trained
    assert "BLEU =" in out and "chrF =" in out and "BLEU (lowercased) =" in out
    assert "Test split: " in out and "on 30 sentences" in out
    assert out.count(" -> ") == 5
    assert (run_dir / "model.keras").is_file()
    assert "Training ran to the end of epoch 1, step 10; model.keras is the best by " \
        "validation BLEU: step 10 (epoch 1)" in out


def test_translate_arguments_and_stdin(run_dir, capsys, monkeypatch):
    code, out, err = run(capsys, "translate", "--run-dir", str(run_dir),
                         "Je suis étudiant.", "", "Nous aimons les chiens.")
    assert code == 0, err
    lines = out.split("\n")[:-1]
    assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]
    monkeypatch.setattr(sys, "stdin", io.StringIO("Je suis étudiant.\nNous aimons les chiens.\n"))
    code, out_stdin, err = run(capsys, "translate", "--run-dir", str(run_dir))
    assert code == 0, err
    assert out_stdin.split("\n")[:-1] == [lines[0], lines[2]]
    code, out_greedy, _ = run(capsys, "translate", "--run-dir", str(run_dir), "--beam-size", "1",
                              "Je suis étudiant.")
    assert code == 0 and out_greedy.strip()


def test_evaluate_reports_bleu_chrf_and_lowercased_bleu(run_dir, files, capsys):
    code, out, err = run(capsys, "evaluate", "--run-dir", str(run_dir), "--beam-size", "1")
    assert code == 0, err
    assert "on 30 sentences" in out
    for name in ("BLEU =", "BLEU (lowercased) =", "chrF ="):
        assert name in out
    _, corpus, _ = files
    code, out, err = run(capsys, "evaluate", "--run-dir", str(run_dir), "--data", str(corpus),
                         "--beam-size", "1")
    assert code == 0, err
    assert "on 300 sentences" in out
    assert "BLEU signature: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2." in out


def test_train_workflow_options_reach_the_trainer(files, tmp_path, capsys):
    directory, corpus, config = files
    pairs = generate_pairs(num_pairs=40, seed=11)
    held_out = tmp_path / "held_out.tsv"
    held_out.write_text("".join(f"{en}\t{fr}\n" for fr, en in pairs), encoding="utf-8")
    run_dir = tmp_path / "run"
    code, out, err = run(
        capsys, "train", "--output-dir", str(run_dir), "--data", str(corpus),
        "--config", str(config), "--epochs", "2", "--validation-data", str(held_out),
        "--test-data", str(held_out), "--batch-tokens", "160", "--validation-steps", "50",
        "--validation-bleu-sentences", "10", "--early-stopping", "3", "--max-time", "0.0001",
    )
    assert code == 0, err
    assert "Training stopped at the time limit at step 1, in epoch 1; model.keras is the " \
        "best by validation BLEU: step 1 (epoch 1)" in out
    assert "on 40 sentences" in out  # the --test-data set
    assert json.loads((run_dir / "config.json").read_text())["batch_tokens"] == 160


def test_translate_n_best_with_scores(run_dir, capsys):
    code, out, err = run(capsys, "translate", "--run-dir", str(run_dir), "--n-best", "2",
                         "--scores", "Je suis étudiant.", "Nous aimons les chiens.")
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    assert [row[0] for row in rows] == ["0", "0", "1", "1"]
    assert all(len(row) == 3 for row in rows)
    assert float(rows[0][1]) >= float(rows[1][1]) and float(rows[2][1]) >= float(rows[3][1])
    _, best, _ = run(capsys, "translate", "--run-dir", str(run_dir), "Je suis étudiant.")
    assert rows[0][2] == best.strip()


def test_average_writes_the_mean_model_and_scores_it(run_dir, tmp_path, capsys):
    output = tmp_path / "averaged.keras"
    code, out, err = run(capsys, "average", "--run-dir", str(run_dir), "--last", "1",
                         "--output", str(output), "--beam-size", "1")
    assert code == 0, err
    assert f"Wrote {output}: the mean of 1 checkpoints (epoch_001.keras)" in out
    assert "Test split: BLEU" in out and "BLEU signature: " in out
    assert output.is_file()


@pytest.mark.parametrize("average", [False, True])
def test_attention_writes_a_heatmap(run_dir, files, capsys, average):
    output = files[0] / f"heatmap_{average}.png"
    argv = ["attention", "--run-dir", str(run_dir), "Je suis étudiant.", "--output", str(output)]
    code, out, err = run(capsys, *argv, *(["--average-heads"] if average else []))
    assert code == 0, err
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "decoder layer 0" in out


def test_export_ids_only_loads_with_tensorflow_alone(run_dir, tmp_path, capsys):
    output = tmp_path / "translator" / "1"
    code, out, err = run(capsys, "export", "--run-dir", str(run_dir), "--format", "saved_model",
                         "--output", str(output), "--ids-only")
    assert code == 0, err
    assert out.strip() == f"Wrote {output}"
    script = f"""
import json, sys
import tensorflow as tf
model = tf.saved_model.load({str(output)!r})
outputs = model.signatures["serving_default"](encoder_token_ids=tf.constant([[5, 6, 3]]))
print(json.dumps({{
    "signatures": sorted(model.signatures),
    "inputs": sorted(model.signatures["serving_default"].structured_input_signature[1]),
    "outputs": sorted(outputs),
    "imported": [name for name in ("tensorflow_text", "keras_transformer") if name in sys.modules],
}}))
"""
    report = run_in_clean_process(script)
    assert report == {
        "signatures": ["serving_default", "translate_ids"],
        "inputs": ["encoder_token_ids"],
        "outputs": ["scores", "token_ids"],
        "imported": [],
    }


def test_export_ids_only_is_for_saved_model(run_dir, tmp_path, capsys):
    code, _, err = run(capsys, "export", "--run-dir", str(run_dir), "--format", "tflite",
                       "--output", str(tmp_path / "model.tflite"), "--ids-only")
    assert_usage_error(code, err, "--ids-only", "saved_model format only", "'tflite'")
    assert not (tmp_path / "model.tflite").exists()


def assert_usage_error(code, err, *fragments):
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().split("\n")
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_run_directory(tmp_path, capsys):
    missing = str(tmp_path / "nowhere")
    for argv in (["translate", "--run-dir", missing, "Bonjour."],
                 ["evaluate", "--run-dir", missing],
                 ["attention", "--run-dir", missing, "Bonjour.", "--output", "x.png"]):
        code, _, err = run(capsys, *argv)
        assert_usage_error(code, err, "nowhere", "does not exist", "train --output-dir")


def test_incomplete_run_directory(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    code, _, err = run(capsys, "translate", "--run-dir", str(tmp_path), "Bonjour.")
    assert_usage_error(code, err, "incomplete", "model.keras", "source_vocabulary.txt")


def test_bad_data_file(tmp_path, files, capsys):
    _, _, config = files
    bad = tmp_path / "bad.tsv"
    bad.write_text("Hello.\tBonjour.\nno tab here but a\ttab\textra\tfields\n")
    code, _, err = run(capsys, "train", "--output-dir", str(tmp_path / "run"), "--data", str(bad),
                       "--config", str(config))
    assert_usage_error(code, err, "bad.tsv:2", "found 4 tab-separated field(s)")
    code, _, err = run(capsys, "train", "--output-dir", str(tmp_path / "run"),
                       "--data", str(tmp_path / "missing"), "--config", str(config))
    assert_usage_error(code, err, "No corpus found", "missing")


def test_unknown_config_key_and_recipe(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"recipe": "tiny", "hiden_dim": 8}))
    code, _, err = run(capsys, "train", "--output-dir", str(tmp_path / "run"),
                       "--config", str(config))
    assert_usage_error(code, err, "unknown config keys ['hiden_dim']", "Known keys")
    code, _, err = run(capsys, "train", "--output-dir", str(tmp_path / "run"), "--config", "huge")
    assert_usage_error(code, err, "'huge'", "tiny")
    assert not (tmp_path / "run").exists()


def test_bad_layer_and_direction(run_dir, tmp_path, capsys):
    code, _, err = run(capsys, "attention", "--run-dir", str(run_dir), "Je suis étudiant.",
                       "--output", str(tmp_path / "x.png"), "--layer", "3")
    assert_usage_error(code, err, "--layer must be in [-1, 0]", "Received: 3")
    code, _, err = run(capsys, "train", "--output-dir", str(tmp_path / "run"),
                       "--direction", "french")
    assert_usage_error(code, err, "'french'", "'fr-en'")


def test_argparse_errors_exit_with_code_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", "--beam-size", "0", "--run-dir", "x"])
    assert exit_info.value.code == 2
    assert "expected a positive integer, received '0'" in capsys.readouterr().err


def test_python_dash_m_reports_a_missing_run_directory(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_transformer", "translate", "--run-dir",
         str(tmp_path / "nowhere"), "Bonjour."],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "keras-transformer translate: error:" in result.stderr
    assert "nowhere" in result.stderr


def test_sentencepiece_run_trains_translates_evaluates_and_exports(files, tmp_path, capsys):
    import tensorflow as tf

    from keras_transformer.translation import Translator

    directory, corpus, _ = files
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**TINY_CONFIG, "tokenizer": "sentencepiece"}))
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "--output-dir", str(run_dir), "--data", str(corpus),
                         "--config", str(config))
    assert code == 0, err
    assert "on 30 sentences" in out
    assert json.loads((run_dir / "config.json").read_text())["tokenizer"] == "sentencepiece"
    assert (run_dir / "source_spm.model").is_file() and (run_dir / "target_spm.model").is_file()
    assert not (run_dir / "source_vocabulary.txt").exists()

    code, out, err = run(capsys, "translate", "--run-dir", str(run_dir), "Je suis étudiant.", "")
    assert code == 0, err
    assert len(out.split("\n")) == 3 and out.endswith("\n\n")  # one line per text
    code, out, err = run(capsys, "evaluate", "--run-dir", str(run_dir), "--beam-size", "1")
    assert code == 0, err
    assert "on 30 sentences" in out and "chrF =" in out

    output = tmp_path / "translator" / "1"
    code, out, err = run(capsys, "export", "--run-dir", str(run_dir), "--format", "saved_model",
                         "--output", str(output))
    assert code == 0, err
    sources = ["Je suis étudiant.", "Nous aimons les chiens."]
    served = tf.saved_model.load(str(output)).signatures["serving_default"](
        text=tf.constant(sources)
    )["translations"]
    expected = Translator.from_run_dir(run_dir).translate(sources)
    assert [text.decode("utf-8") for text in served.numpy()] == expected


def test_attention_without_matplotlib_names_the_plot_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    code, _, err = run(capsys, "attention", "--run-dir", str(tmp_path), "Bonjour.",
                       "--output", str(tmp_path / "a.png"))
    assert_usage_error(code, err, "the attention plot needs matplotlib",
                       "pip install 'keras-transformer-seq2seq[plot]'")
