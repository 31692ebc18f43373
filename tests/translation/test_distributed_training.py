"""`train(..., distribution="multi-worker")`: two worker processes on 127.0.0.1
end with the weights of one process trained on the same global batches.

Each worker is a process of its own (`MultiWorkerMirroredStrategy` reads
TF_CONFIG and configures TensorFlow's collective operations at startup)
running tests/translation/distributed_worker.py; meanwhile the test process
runs the same script's `main` without distribution.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from distributed_worker import main as train_and_save

from keras_transformer.data import generate_pairs
from keras_transformer.translation.distribution import distribute_run, read_tf_config

REPOSITORY = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
TIMEOUT = 300
# Global batches of 16 pairs, 8 per worker; dropout 0, as dropout would draw
# different masks on each replica.
CONFIG = {
    "recipe": "tiny", "num_layers": 1, "hidden_dim": 16, "num_heads": 2,
    "intermediate_dim": 32, "dropout": 0.0, "max_sequence_length": 16,
    "source_vocabulary_size": 100, "target_vocabulary_size": 100, "batch_size": 16,
    "epochs": 1, "warmup_steps": 20, "beam_size": 1, "ema_momentum": 0.0,
}


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start(arguments, tf_config=None):
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("TF_CONFIG", None)
    if tf_config is not None:
        environment["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, arguments)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )


def wait_all(processes, deadline):
    """Waits for every process until `deadline` (`time.monotonic()`); returns their stdouts."""
    outputs = [
        process.communicate(timeout=max(deadline - time.monotonic(), 0))
        for process in processes
    ]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    return [stdout for stdout, _ in outputs]


def kill_all(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def load(path):
    """(weight paths, initial weights, final weights, logits) a worker saved."""
    with np.load(path) as arrays:
        paths = list(arrays["paths"])
        initial = [arrays[f"initial_{i}"] for i in range(len(paths))]
        final = [arrays[f"final_{i}"] for i in range(len(paths))]
        return paths, initial, final, arrays["logits"]


def write_files(directory):
    corpus, config = directory / "corpus.tsv", directory / "config.json"
    pairs = generate_pairs(num_pairs=200, seed=5)
    corpus.write_text("".join(f"{en}\t{fr}\n" for fr, en in pairs), encoding="utf-8")
    config.write_text(json.dumps(CONFIG))
    return corpus, config


def test_two_workers_end_with_the_weights_of_one_process(tmp_path):
    corpus, config = write_files(tmp_path)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    run_dir = tmp_path / "multi-worker"
    deadline = time.monotonic() + TIMEOUT
    processes = [
        start(
            [config, corpus, run_dir, tmp_path / f"worker{index}.npz", "multi-worker"],
            {"cluster": cluster, "task": {"type": "worker", "index": index}},
        )
        for index in (0, 1)
    ]
    try:
        train_and_save(config, corpus, tmp_path / "single", tmp_path / "single.npz", "none")
        written = wait_all(processes, deadline)
    finally:
        kill_all(processes)

    paths, initial, worker0, logits0 = load(tmp_path / "worker0.npz")
    *_, worker1, logits1 = load(tmp_path / "worker1.npz")
    _, single_initial, single, single_logits = load(tmp_path / "single.npz")
    for a, b in zip(initial + worker0, single_initial + worker1, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(logits0, logits1)
    # The key biases' exact gradient is 0 (softmax ignores a score added to
    # every key), and Adam turns the rounding noise in their computed
    # gradients into steps of about the learning rate, different in each
    # process: they are compared through the logits, which they do not change.
    for path, a, b in zip(paths, worker0, single, strict=True):
        if not path.endswith("key/bias"):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=path)
    np.testing.assert_allclose(logits0, single_logits, rtol=1e-5, atol=1e-5)
    assert max(np.abs(a - b).max() for a, b in zip(worker0, initial)) > 1e-2
    # Only the chief (worker 0) wrote the run directory; worker 1 wrote to a
    # temporary directory, deleted when it exited.
    assert Path(written[0].strip()) == run_dir
    assert (run_dir / "model.keras").is_file()
    assert Path(written[1].strip()) != run_dir
    assert not Path(written[1].strip()).exists()


def test_mirrored_on_one_cpu_trains_like_no_strategy(tmp_path):
    """One replica: the strategy's code path (scope, distributed dataset,
    Keras's symbolic build reading a batch) must not change the run."""
    corpus, config = write_files(tmp_path)
    for distribution in ("none", "mirrored"):
        train_and_save(config, corpus, tmp_path / distribution, tmp_path / f"{distribution}.npz",
                       distribution)
    _, initial, mirrored, mirrored_logits = load(tmp_path / "mirrored.npz")
    _, _, single, single_logits = load(tmp_path / "none.npz")
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(mirrored_logits, single_logits, rtol=1e-5, atol=1e-5)
    assert max(np.abs(a - b).max() for a, b in zip(mirrored, initial)) > 1e-2


TF_CONFIG = {
    "cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
    "task": {"type": "worker", "index": 1},
}


def test_tf_config_is_read_and_checked():
    assert read_tf_config(json.dumps(TF_CONFIG)) == TF_CONFIG
    with pytest.raises(ValueError, match="needs TF_CONFIG, which is not set"):
        read_tf_config(None)
    with pytest.raises(ValueError, match=r"TF_CONFIG is not JSON: received 'worker'"):
        read_tf_config("worker")
    for bad in (
        {"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}},
        {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}},
        {"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}},
        {"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}},
        {"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}},
        {"cluster": {"worker": ["a:1"], "chief": ["b:1", "c:1"]},
         "task": {"type": "chief", "index": 0}},
        {"cluster": {"worker": ["a:1"]}},
        [1],
    ):
        with pytest.raises(ValueError, match=r"TF_CONFIG is malformed: received .*expected"):
            read_tf_config(json.dumps(bad))


def test_bad_distributions_are_refused_before_training(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"one of \['mirrored', 'multi-worker', 'none'\]"):
        distribute_run("ring", tmp_path)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        distribute_run("multi-worker", tmp_path)
    monkeypatch.setenv("TF_CONFIG", json.dumps(TF_CONFIG))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="holds a run, and a multi-worker run cannot resume"):
        distribute_run("multi-worker", tmp_path)
