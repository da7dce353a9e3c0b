# llm-platform: two commands on a fresh machine, `make plan` and `make test E2E=1` (the
# full suite, as CI runs it); `make test` alone is the fast loop.
# Both install what they need first (Python venv from the pinned requirements, and
# Debian's promtool/amtool for the alert-rule tests).

STACK ?= dev
STACKS := $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GATEWAY_VENV := .venv-gateway
GATEWAY_STAMP := $(GATEWAY_VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Outside the clone, so a fresh clone (and CI's, on the same machine) starts warm: a
# cold mypy run is most of `make test`. mypy keys its cache by file content and options.
MYPY_CACHE ?= $(HOME)/.cache/llm-platform/mypy
# Python caches compiled modules (and pytest its rewritten tests) in __pycache__/, which
# every later process and pytest-xdist worker reuses: a second or more per process.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup plan plans test lint unit clean

setup: $(STAMP) $(GATEWAY_STAMP) tools-apt

# Debian and Ubuntu ship `venv` without `ensurepip` until python3-venv is installed.
$(STAMP): requirements.txt requirements-dev.txt
	@python3 -c 'import ensurepip' 2>/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    python3-venv >/dev/null; }
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The LiteLLM proxy the gateway tests run as a real process, apart from the program's
# pins (its dependencies clash with them).
$(GATEWAY_STAMP): requirements-gateway.txt
	python3 -m venv $(GATEWAY_VENV)
	$(GATEWAY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(GATEWAY_VENV)/bin/python -m pip install --quiet -r requirements-gateway.txt
	touch $(GATEWAY_STAMP)

# promtool (Debian `prometheus`) and amtool (`prometheus-alertmanager`) check and
# unit-test the rendered alert rules and Alertmanager config; actionlint runs shellcheck
# on the workflows' `run:` scripts.
tools-apt:
	@command -v promtool >/dev/null && command -v amtool >/dev/null && \
	  command -v shellcheck >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager shellcheck >/dev/null; }

## Offline plan of one stack (default dev): build/$(STACK)/ and a summary.
plan: $(STAMP)
	$(PY) -m tools plan $(STACK)

## Offline plan of every committed stack, in one process.
plans: $(STAMP)
	$(PY) -m tools plan $(STACKS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy --cache-dir "$(MYPY_CACHE)" .

# With E2E=1, the end-to-end tests too (`pytest.mark.e2e`: a real LiteLLM proxy, a plan
# per policy-breaking change, the README's recipes in a scratch copy).
E2E ?=
E2E_ON := $(filter 1 yes true,$(E2E))
# In parallel, one worker per core (pytest-xdist). The end-to-end tests of one LiteLLM
# proxy share a worker (`--dist loadgroup`), so it starts once.
PYTEST_ARGS := $(if $(E2E_ON),--dist loadgroup,--dist worksteal -m "not e2e")

# Only the end-to-end tests run the LiteLLM proxy, from its own venv.
unit: $(STAMP) tools-apt $(if $(E2E_ON),$(GATEWAY_STAMP))
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

## The fast loop: lint, type check and the unit tests, which plan every committed stack
## (after apply and at preview) and fail unless each is clean. With E2E=1, everything CI
## runs: the end-to-end tests too, and the offline plan of every stack printed.
test: lint unit $(if $(E2E_ON),plans)

clean:
	rm -rf build $(VENV) $(GATEWAY_VENV)
