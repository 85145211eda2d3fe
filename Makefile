# Set-up and test entry points. `make setup` works on a fresh machine; `make test` runs ruff, then the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test data clean

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch/torchvision pinned exactly; installed first so nothing else pulls another build.
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e '.[test]'
	touch $@

data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then \
	  echo "Fashion-MNIST present in /usr/share/datasets/fashion-mnist"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
	    || echo "apt-get could not install dataset-fashion-mnist; Fashion-MNIST runs need --data-root"; \
	else \
	  echo "apt not usable here (not root or no apt-get): skipping dataset-fashion-mnist; Fashion-MNIST runs need --data-root"; \
	fi

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
