"""Trains the tiny run of tests/translation/test_distributed_training.py in one process.

    python distributed_worker.py CONFIG CORPUS RUN_DIR OUTPUT DISTRIBUTION

runs `translation.train(CONFIG, RUN_DIR, data=CORPUS, distribution=DISTRIBUTION)`
(a multi-worker run reads TF_CONFIG), saves to OUTPUT (.npz) the weights'
paths, their values when training begins (initial_0, ...) and ends (final_0,
...), and the trained model's logits on fixed token ids; prints the
directory it wrote the run to.
"""

import sys

import keras
import numpy as np

from keras_transformer.translation import train

# (B, S) and (B, T) ids below every vocabulary size the test's config learns.
IDS = np.arange(4, 40, dtype="int32").reshape(4, 9)


class InitialWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.values = self.model.get_weights()


def main(config: str, corpus: str, run_dir: str, output: str, distribution: str) -> None:
    initial = InitialWeights()
    translator = train(
        config, run_dir, data=corpus, verbose=0, callbacks=[initial], distribution=distribution
    )
    model = translator.model
    arrays = {f"initial_{i}": value for i, value in enumerate(initial.values)}
    arrays.update({f"final_{i}": value for i, value in enumerate(model.get_weights())})
    logits = model({"encoder_token_ids": IDS, "decoder_token_ids": IDS[:, ::-1]})
    np.savez(
        output,
        paths=np.array([weight.path for weight in model.weights]),
        logits=keras.ops.convert_to_numpy(logits),
        **arrays,
    )
    print(translator.run_dir)


if __name__ == "__main__":
    main(*sys.argv[1:])
