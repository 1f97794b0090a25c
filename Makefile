# Everything the project needs is installed by these targets: CI runs `make test` on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20

.PHONY: install test demo bench synth chaos clean

# A .venv installed before the distribution was renamed `sluice-flows` holds one called `sluice`
# (that name on PyPI is an unrelated project): it is removed before installing, so that it can
# never later remove bin/sluice or answer for the import package.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip uninstall -y -q sluice 2>/dev/null || true
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) examples/demo.py

bench: $(STAMP)
	$(PY) bench/run_all.py

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
