# Set-up and entry points. `make run` and `make test` create the virtualenv
# and install the package with its pinned dependencies on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-slow benchmarks clean

$(BIN)/keras-transformer: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,export]"
	touch $@

run: $(BIN)/keras-transformer
	$(BIN)/python examples/translate_embedded.py

# The whole suite under TensorFlow, then the layer tests under JAX.
test: $(BIN)/keras-transformer
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider
	KERAS_BACKEND=jax $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider tests/layers

test-slow: $(BIN)/keras-transformer
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider -m slow

clean:
	rm -rf $(VENV) build *.egg-info
