# Aforo: `make demo` runs it embedded; `make test` runs the whole suite against real services.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Where alerts and Slack messages link to the console: the address `make demo` and `make serve`
# serve on, unless set.
AFORO_PUBLIC_URL ?= http://$(HOST):$(PORT)

.PHONY: demo serve install test bench lint clean

$(STAMP): requirements.txt requirements-dev.txt sdk/python/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) is required (or set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) manage.py migrate --verbosity 0
	AFORO_PUBLIC_URL=$(AFORO_PUBLIC_URL) $(PY) manage.py demo --host $(HOST):$(PORT)
	AFORO_PUBLIC_URL=$(AFORO_PUBLIC_URL) AFORO_DEMO_TRAFFIC=true \
		$(PY) manage.py runserver $(HOST):$(PORT) --noreload

serve: install
	AFORO_PUBLIC_URL=$(AFORO_PUBLIC_URL) $(PY) manage.py runserver $(HOST):$(PORT) --noreload

test: install
	bash scripts/test $(ARGS)

bench: install
	@echo "Benchmarks write their figures to benchmarks/RESULTS.md"
	bash scripts/bench $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf var/chdb var/aforo.sqlite3 var/static var/test-*
