# Set-up and test entry points. `make setup` works on a fresh machine; `make test` runs ruff, then the suite;
# `make test-fast` the suite without its slow tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-fast data clean gpu-carry

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

# The suite without the tests marked slow (tests/conftest.py lists them): about a minute on 2 busy cores.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info

# For a time-boxed batch on an offline GPU machine (experiments/gpu_session.sh, docs/study.md section 5): the data
# and the wheels its image lacks, at the versions installed here, into the git-ignored .carry/ copied along with the
# checkout (where a batch compiled, also .carry/compile-cache, unpacked from the last batch's compile-cache.tar.gz).
GPU_WHEELS := pydantic pydantic-core annotated-types typing-inspection typing-extensions ptflops typer
CIFAR10_JPEG ?= ../shared/data/cifar10-jpeg.tar.gz
gpu-carry: $(VENV)/.installed
	rm -rf .carry/wheels .carry/cifar10-jpeg.tar.gz && mkdir -p .carry/wheels  # a compile cache brought back stays
	cp $(CIFAR10_JPEG) .carry/cifar10-jpeg.tar.gz
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .carry/wheels \
	  $$($(PY) -c 'import importlib.metadata as m, sys; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $(GPU_WHEELS))
	du -sh .carry
