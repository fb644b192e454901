# Two commands do all set-up on a fresh machine:
#   make train   create .venv, install vitscale, train on CIFAR-10 (ViT-Lite-7/4 on a GPU,
#                the quick CPU config otherwise)
#   make test    the same set-up with the test extras, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The real CIFAR-10 next to the checkout when it is there; otherwise vitscale downloads it.
DATA   ?= $(firstword $(wildcard ../shared/datasets/cifar10))
# Two workers, one test file each at a time, longest files first (tests/conftest.py): the suite
# is sized for 2 cores (under 15 minutes);
# `make test PYTEST_ARGS="-m 'not slow' -n 0"` is the quick inner loop; `make test-extended`
# runs the longest checks (16-process pipeline layouts, the GPU script in tiny mode).
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder -m 'not extended'

.PHONY: train test test-extended docs install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

train: $(VENV)/.installed
	@if $(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  cfg=configs/cifar10/vit_lite_7_4.py; echo "make train: GPU found: training ViT-Lite-7/4 ($$cfg)"; \
	else \
	  cfg=configs/cifar10/quick_cpu.py; echo "make train: no GPU: training the quick CPU config ($$cfg)"; \
	fi; \
	$(VENV)/bin/vitscale train $$cfg $(if $(DATA),--data $(DATA))

test: $(VENV)/.installed-test
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

test-extended: $(VENV)/.installed-test
	$(PY) -m pytest -q -n 2 --dist loadfile -m extended tests

# The plots docs/run-directory.md and docs/experiments.md show, rendered from the recorded real
# runs into docs/images (not kept in git; the test suite renders them into a temporary folder).
docs: $(VENV)/.installed-test
	VITSCALE_DOCS_IMAGES=docs/images $(PY) -m pytest -q tests/test_durable.py tests/test_sweep.py -k "docs_report_images or docs_sweep_images"

clean:
	rm -rf $(VENV) .cache .pytest_cache *.egg-info
