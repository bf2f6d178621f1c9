# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# `make run` first checks the Debian libraries Qt needs (.ci/qt-packages, the list .ci/run uses too):
# run as root it installs the missing ones, else it prints the apt-get line that does.
# `venv` creates .venv when it is missing and (re)installs the project only when pyproject.toml
# is newer than the last install (stamp: .venv/.installed), so it costs nothing when up to date.

# torch 2.13.0 has a cp311 CPU wheel here: prefer Python 3.11 when the machine has it.
PY ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch, never a CUDA one: the local wheel folder when it holds torch 2.13.0,
# else PyTorch's CPU index (its 2.13.0+cpu outranks PyPI's 2.13.0).
WHEELS ?= /opt/wheels
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_SOURCE := $(if $(wildcard $(WHEELS)/torch-2.13.0*.whl),--find-links $(WHEELS),--extra-index-url $(TORCH_CPU_INDEX))
PIP := $(BIN)/python -m pip install --quiet --no-input $(TORCH_SOURCE)

.PHONY: venv run test test-quick screenshots install-desktop uninstall-desktop clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test]'
	@touch $(STAMP)

run: venv
	@bash .ci/qt-packages ensure
	$(BIN)/shvc-gui

test: venv
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The quick run: every test but those marked slow (pyproject.toml); CI runs `make test`, all of them.
test-quick: venv
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The menu entry, icons and the image/x-shvc type (magic "SHVC") for the current user.
install-desktop: venv
	$(BIN)/python resources/install_desktop.py --exec "$(abspath $(BIN))/shvc-gui"

uninstall-desktop:
	python3 resources/install_desktop.py --uninstall

# docs/screenshots/*.png: the window with results, taken offscreen with the shipped model on crops of
# the validation photographs when the corpus is present (else synthetic pictures).
screenshots: venv
	SHVC_SCREENSHOT_DIR=docs/screenshots SHVC_SCREENSHOT_SHIPPED=1 \
	SHVC_SCREENSHOT_IMAGES=$(firstword $(wildcard data/corpus-v1/val data/corpus-v0/val)) QT_QPA_PLATFORM=offscreen \
	$(BIN)/python -m pytest -q tests/gui/test_screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
