# The two commands of the README. Both create or reuse .venv and install the locked stack first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sag-bench-installed
DEMO_STAMP := $(VENV)/.sag-bench-demo-installed
# Optional torch wheel index for the demo, e.g. the CPU-only wheels (no CUDA libraries, ~2.5 GB less):
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: demo test setup system-deps browser-deps clean-venv

setup: $(STAMP)

# Debian packages $(1) when missing: apt-get as root, else a warning naming them.
define apt_install
	@if [ -n "$(strip $(1))" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $(strip $(1))"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	  else \
	    echo "warning: missing system packages: $(strip $(1)) (install them with apt-get as root)"; \
	  fi; \
	fi
endef

# What the demo needs: ffmpeg (musdb/stempeg, mp3) and the PortAudio headers (tinysoundfont's pyaudio).
system-deps:
	$(call apt_install,$(if $(shell command -v ffmpeg),,ffmpeg) $(if $(wildcard /usr/include/portaudio.h),,portaudio19-dev))

# What only the tests need: Chromium for the browser tests (listening study, report page).
browser-deps:
	$(call apt_install,$(if $(shell command -v chromium),,chromium chromium-driver))

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The demo: the package and its runtime dependencies at the locked versions (no test or listening-server extras).
$(DEMO_STAMP): requirements.lock pyproject.toml | system-deps $(VENV)/bin/python
	$(if $(TORCH_INDEX),$(PY) -m pip install -q -c requirements.lock --index-url $(TORCH_INDEX) torch torchaudio torchvision)
	$(PY) -m pip install -q -c requirements.lock -e .
	@touch $(DEMO_STAMP)

# The tests (CI's command): the whole locked stack, including the test and listening-server extras.
$(STAMP): requirements.lock pyproject.toml | system-deps browser-deps $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/sag-bench demo

test: $(STAMP)
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
