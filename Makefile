# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: run test install install-dev system-deps lint bench conformance clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed system-deps

install-dev: $(VENV)/.installed-dev system-deps

# Debian packages the app and its tests use: libmagic (content sniffing), chromium (browser tests),
# fpcalc (audio fingerprints), sox (audio test clips), openssl (third-party verification docs),
# DejaVu fonts (PDF certificates in any script), unzip (the evidence archive is checked with it).
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/fpcalc /usr/bin/sox /usr/bin/openssl /usr/bin/unzip /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do [ -e $$t ] || missing="$$missing $$t"; done; \
	[ -e /usr/lib/x86_64-linux-gnu/libmagic.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libmagic.so.1 ] || missing="$$missing libmagic"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    chromium libchromaprint-tools sox libsox-fmt-all openssl unzip libmagic1 fonts-dejavu-core >/dev/null; \
	fi

run: install
	$(BIN)/ipx serve

test: install-dev
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check ipx tests bench

bench: install-dev
	$(BIN)/python bench/registry.py

conformance: install-dev
	$(BIN)/python ../shared/conformance/evidence_check.py http://127.0.0.1:8000

clean:
	rm -rf $(VENV) storage/data
