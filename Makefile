# iotistica-k8s: cdk8s (Python) app -> dist/<release>/
# GNU make. `make` alone lists the targets.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CDK8S  := node_modules/.bin/cdk8s
# ENV: one or more environment names (space separated) for `make synth`; empty = all.
ENV    ?=
# TEST_JOBS: processes for `make test` (pytest-xdist); 0 = one process.
TEST_JOBS ?= 2

# No end-of-life / upgrade banners from jsii and the cdk8s CLI (every node/jsii call).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK8S_CHECK_UPGRADE := false

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help setup checkov-venv bytecode synth test e2e bench bench-e2e imports lint clean

help: ## list the targets
	@echo "Targets:"
	@grep -E '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([^:]+):.*## (.*)/  \1\t\2/' | expand -t 12
	@echo "Variables: ENV='name ...' (synth), PYTHON=$(PYTHON) (to create .venv)"

$(VENV)/.stamp: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "pip install -r requirements.lock (log: $(VENV)/pip-install.log)"
	@$(VENV)/bin/pip install -q -r requirements.lock >$(VENV)/pip-install.log 2>&1 \
		|| { cat $(VENV)/pip-install.log; exit 1; }
	@# The console script `iotistica-k8s` (cli:main); setuptools' editable-install notice goes to a log.
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e . >$(VENV)/editable-install.log 2>&1 \
		|| { cat $(VENV)/editable-install.log; exit 1; }
	@touch $@

node_modules/.stamp: package-lock.json package.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(VENV)/.stamp node_modules/.stamp ## create .venv (requirements.lock) and node_modules (npm ci)

# Checkov (docs/hardening.md) lives in its own venv: its pins (packaging<24, python-dateutil<3 via
# botocore) conflict with requirements.lock. tests/test_checkov.py runs .venv-tools/bin/checkov.
TOOLS_VENV := .venv-tools
$(TOOLS_VENV)/.stamp: requirements-checkov.lock
	$(PYTHON) -m venv $(TOOLS_VENV)
	@echo "pip install -r requirements-checkov.lock (log: $(TOOLS_VENV)/pip-install.log)"
	@$(TOOLS_VENV)/bin/pip install -q -r requirements-checkov.lock >$(TOOLS_VENV)/pip-install.log 2>&1 \
		|| { cat $(TOOLS_VENV)/pip-install.log; exit 1; }
	@touch $@

checkov-venv: $(TOOLS_VENV)/.stamp ## create .venv-tools (Checkov, requirements-checkov.lock)

# Bytecode for the project and the large CRD bindings: Python reads .pyc even where the environment
# sets PYTHONDONTWRITEBYTECODE, and compiling imports/ from source costs ~0.5 s per process otherwise.
# `make synth` runs `python -O` (no jsii runtime type checks, which the tests keep), so the -O
# bytecode (.opt-1.pyc) is compiled too: once for the installed packages, each time for ours.
$(VENV)/.opt-bytecode.stamp: $(VENV)/.stamp
	@$(PY) -O -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null 2>&1 || true
	@touch $@

bytecode: setup $(VENV)/.opt-bytecode.stamp
	@$(PY) -m compileall -q -j 0 app.py cli.py synth constructs tiers imports >/dev/null
	@$(PY) -O -m compileall -q -j 0 app.py cli.py synth constructs tiers imports >/dev/null

synth: bytecode ## synthesize manifests into dist/<release>/ (ENV='a b' for some environments)
	$(PY) -O app.py $(if $(strip $(ENV)),$(foreach e,$(ENV),--env $(e)))

# The suite runs in TEST_JOBS processes (pytest-xdist; pyproject's --dist loadscope keeps a test module's tests in one of them): each process
# starts its own real servers (own ports, own temporary folders). TEST_JOBS=0 runs it in one process.
test: bytecode $(TOOLS_VENV)/.stamp ## run the test suite (installs missing Debian test services when root)
	scripts/ensure-system-deps.sh
	$(PY) -m pytest -n $(TEST_JOBS)

# The end-to-end run (tests/e2e/, docs/e2e.md): a demo and a standard release of dist/, each synced to a real
# kube-apiserver and run by the real programs from ../shared/vendor, side by side in two processes (one test module
# per release). `make test` runs it too (it skips, with one line, without the vendor folder).
e2e: bytecode ## run the end-to-end tests only (real API, ingestion, broker, Redis, TimescaleDB; docs/e2e.md)
	scripts/ensure-system-deps.sh
	$(PY) -m pytest -m e2e -n 2 tests/e2e

bench: bytecode ## measure synth wall time against the import floor; synth, validate and diff side by side
	$(PY) scripts/bench.py
	$(PY) scripts/bench.py --commands

bench-e2e: bytecode ## sustained telemetry rate through broker, go-auth, API, Redis, ingestion into TimescaleDB (docs/performance.md)
	$(PY) scripts/bench_e2e.py

imports: setup ## regenerate imports/ from ../shared/crds (one module per API group)
	scripts/import-crds.sh

lint: setup ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# dist/ is committed (ArgoCD deploys it), so clean leaves it alone; `make synth` refreshes it.
# Staging left by a killed synth (SIGKILL; other signals clean up): .dist.synth-*; the cdk8s CLI's
# scratch folder .cdk8s-staging; names older versions created (.old-dist-*, dist/.old-*).
clean: ## remove caches (also the e2e build, .e2e-cache) and leftover synth staging folders (keeps dist/, imports/, .venv, node_modules)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .synth-cache .e2e-cache .cdk8s-staging .dist.synth-* .old-dist-* dist/.old-*
	find . -path ./.venv -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -exec rm -rf {} +
