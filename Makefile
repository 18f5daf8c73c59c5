# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-deps demo demo-headless test lint typecheck imports pytest docs bench dashboard clean mutation

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip setuptools wheel
	$(PY) -m pip install -q --disable-pip-version-check -e '.[all,dev,example]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests drive for real: redis-server (store contract suite, fault tests)
# and chromium (dashboard end-to-end). Skipped when already present.
system-deps:
	bash scripts/system-deps.sh

demo: install
	$(PY) -m riskengine demo

demo-headless: install
	$(PY) -m riskengine demo --headless

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

# the layer contracts of docs/layout.md ([tool.importlinter] in pyproject.toml)
imports: install
	$(VENV)/bin/lint-imports

# one pytest worker per core, at most 4 (each worker starts its own Redis servers, Redis
# Cluster and S3 server); PYTEST_WORKERS=0 runs in one process
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

pytest: install system-deps
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist worksteal

# the documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link or a missing page fails
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test: lint typecheck imports docs pytest

# Mutation testing (docs/testing.md): run before a release, not part of `make test` (about 35 min).
mutation: install
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $$(nproc)
	$(VENV)/bin/mutmut results

bench: install system-deps
	$(PY) benchmarks/run_all.py

dashboard: install
	$(PY) -m riskengine dashboard --root var/demo/audit

clean:
	rm -rf var site .pytest_cache .mypy_cache .ruff_cache mutants
