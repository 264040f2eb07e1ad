# `make run` opens the workstation, `make test` runs the test suite.
# Both create .venv with Python 3.12 on first use, and again when pyproject.toml changes.

PYTHON ?= $(shell command -v python3.12 >/dev/null 2>&1 && python3.12 -c "" 2>/dev/null && echo python3.12 || \
	ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12 2>/dev/null | head -n1)
VENV := .venv
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
# `make run` may reach the Hugging Face hub (a hub backbone downloads once, then works
# offline from the cache); tests never do: tests/conftest.py sets the offline variables too.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: run test lint bench clean-venv

# torchcodec, lerobot's fast video decoder (3.8x PyAV's wall time per training frame here),
# loads FFmpeg's shared libraries from the system. Installed where this user may use apt-get;
# elsewhere training decodes with PyAV, slower, and `piper-ws doctor` says what to install.
FFMPEG_LIBS := libavutil libavcodec libavformat libavdevice libavfilter libswscale libswresample

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found: install python3.12 (lerobot 0.6 needs it) or run 'make PYTHON=/path/to/python3.12'"; exit 1; }
	@ldconfig -p 2>/dev/null | grep -q 'libavdevice\.so' || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  pkgs=$$(apt-cache pkgnames | grep -E '^($(shell echo $(FFMPEG_LIBS) | tr ' ' '|'))[0-9]+$$') && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$pkgs >/dev/null && echo "installed $$pkgs (torchcodec)"; \
	} || echo "notice: FFmpeg's shared libraries are not installed: training decodes video with PyAV (slower)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip >/dev/null
	$(VENV)/bin/python -m pip install -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/piper-ws

test: $(STAMP)
	$(OFFLINE) QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
