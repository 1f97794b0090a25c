# Everything the project needs is installed by these targets: CI runs `make test` on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20

.PHONY: install console test demo bench screenshots synth chaos clean

# A .venv installed before the distribution was renamed `sluice-flows` holds one called `sluice`
# (that name on PyPI is an unrelated project): it is removed before installing, so that it can
# never later remove bin/sluice or answer for the import package.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip uninstall -y -q sluice 2>/dev/null || true
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The web console (console/, React + Vite) built into the package data of `sluice`
# (sdk/sluice/console_assets, git-ignored). The built index is the target: it is rebuilt only
# when a source, the lock file or the build configuration is newer. `npm ci` runs only when
# node_modules is older than package-lock.json (npm writes node_modules/.package-lock.json).
CONSOLE_INDEX := sdk/sluice/console_assets/index.html
CONSOLE_MODULES := console/node_modules/.package-lock.json
CONSOLE_SOURCES := $(shell find console/src console/public -type f 2>/dev/null) \
	$(wildcard console/index.html console/vite.config.* console/tsconfig*.json console/package.json)

$(CONSOLE_MODULES): console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $(CONSOLE_MODULES)

$(CONSOLE_INDEX): $(CONSOLE_MODULES) $(CONSOLE_SOURCES)
	cd console && npm run build
	touch $(CONSOLE_INDEX)

console: $(CONSOLE_INDEX)

install: $(STAMP) $(CONSOLE_INDEX)

# The console's own unit tests (vitest: schema forms, secret masking, time buckets) run first.
test: $(STAMP) $(CONSOLE_INDEX)
	cd console && npm test --silent
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP) $(CONSOLE_INDEX)
	$(PY) examples/demo.py

bench: $(STAMP) $(CONSOLE_INDEX)
	$(PY) bench/run_all.py

# docs/console/*.png: one screenshot per console page at 1366x768, with realistic data (an
# embedded server, a worker and a few flows). Needs Debian's chromium (/usr/bin/chromium).
screenshots: $(STAMP) $(CONSOLE_INDEX)
	$(PY) tests/console/screenshots.py

# The reliability scenarios (tests/reliability) with larger counts; prints the table and writes
# docs/reliability.md. Sizes: SLUICE_CHAOS_RUNS (500), SLUICE_CHAOS_WORKERS (6), SLUICE_FUZZ_EXAMPLES (150).
chaos: $(STAMP)
	$(PY) tests/reliability/run_chaos.py

# The CloudFormation template and Lambda asset of the control plane, into cdk.out (plain Python:
# no Docker, no CDK CLI). Options: make synth CONTEXT="-c sluice:alarmEmail=ops@example.com"
synth: $(STAMP)
	$(PY) -m sluice_infra.app $(CONTEXT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
