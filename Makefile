# The two commands of the README. Both create or reuse .venv and install the locked stack first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sag-bench-installed
SYSTEM_PACKAGES := ffmpeg portaudio19-dev chromium chromium-driver

.PHONY: demo test setup system-deps clean-venv

setup: $(STAMP)

# Debian packages: ffmpeg (musdb/stempeg, mp3), PortAudio headers (tinysoundfont's pyaudio), Chromium (browser test).
system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	[ -e /usr/include/portaudio.h ] || missing="$$missing portaudio19-dev"; \
	command -v chromium >/dev/null || missing="$$missing chromium chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing system packages:$$missing (install them with apt-get as root)"; \
	  fi; \
	fi

$(STAMP): requirements.lock pyproject.toml | system-deps
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sag-bench demo

test: $(STAMP)
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
