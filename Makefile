# Two commands do all the set-up on a fresh machine:
#   make demo   render (and caption) the bundled example assets into demo_out/
#   make test   install everything and run the tests
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out

.PHONY: setup sysdeps hfenv demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# CPU torch first, pinned, so nothing can pull the CUDA build.
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[captioner,dev]'
	touch $@

setup: $(BIN)/.installed

# `datasets` needs numpy>=2 while bpy 5.0.1 pins numpy<2, so the Hugging Face export test loads
# the exported folder in a separate small venv.
HF_VENV ?= .venv-hf
$(HF_VENV)/.installed:
	$(PYTHON) -m venv $(HF_VENV)
	$(HF_VENV)/bin/python -m pip install -q datasets Pillow
	touch $@

hfenv: $(HF_VENV)/.installed

# Debian packages for the GUI and browser tests (real Blender 3.4 under Xvfb, headless Chromium).
sysdeps:
	bash scripts/install_system_deps.sh

demo: setup
	$(BIN)/farm render examples/assets -o $(DEMO_OUT) --preset mvcap --views 8 --resolution 128 --samples 8 \
		--categories examples/categories.csv

test: setup sysdeps hfenv
	# any non-zero exit fails, 5 (no tests collected) included
	MVCAP_HF_PYTHON=$(abspath $(HF_VENV))/bin/python $(BIN)/python -m pytest -q -ra tests

clean:
	rm -rf $(VENV) $(HF_VENV) $(DEMO_OUT)
