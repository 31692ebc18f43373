# Set-up and entry points. `make run` and `make test` create the virtualenv
# and install the package with its pinned dependencies on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-slow test-torch test-reference benchmarks clean

$(BIN)/keras-transformer: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,export,plot,convert,tensorboard]"
	touch $@

run: $(BIN)/keras-transformer
	$(BIN)/python examples/translate_embedded.py

# The whole suite under TensorFlow, then the layer tests under JAX.
test: $(BIN)/keras-transformer
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider
	KERAS_BACKEND=jax $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider tests/layers

# The layer tests under PyTorch, and the backend checks with torch present.
# Not part of `make test` (CI): pip takes a CPU build of torch 2.13.0 from a
# local wheel folder where the machine has one; from PyPI on Linux x86-64 it
# is a CUDA build of several GB (add --index-url https://download.pytorch.org/whl/cpu).
test-torch: $(BIN)/keras-transformer
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	KERAS_BACKEND=torch $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider tests/layers
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider tests/backends

# Reruns tests/convert/make_marian_fixture.py with torch and transformers, in
# a virtualenv of their own (the project needs neither), and compares its
# checkpoint and reference outputs with the committed fixture.
test-reference: $(BIN)/keras-transformer
	$(PYTHON) -m venv $(VENV)-reference
	$(VENV)-reference/bin/python -m pip install --quiet "torch==2.13.0" "transformers==5.25.0" \
		"safetensors==0.8.0" "sentencepiece==0.2.3" numpy
	KT_REFERENCE_PYTHON=$(VENV)-reference/bin/python $(BIN)/python -m pytest -q \
		-p no:cacheprovider -m reference tests/convert

test-slow: $(BIN)/keras-transformer
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider -m slow

clean:
	rm -rf $(VENV) build *.egg-info
