# Two commands for a new machine: `make run` and `make test`.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The server's settings follow the port: the demo page's origin may open the
# widget's socket, and load_demo prints links to it.
export PORT

.PHONY: run test lint typecheck pytest install worker bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and \
		"Python 3.11 is required (found " + sys.version.split()[0] + "); set PYTHON=")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

# Compression is off for websockets: chat frames are small, and it more than
# doubled the memory each idle widget costs (docs/performance.md).
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo
	@echo "Serving http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)"
	$(BIN)/python -m uvicorn support_bot.asgi:application \
		--host $(HOST) --port $(PORT) --ws-max-size 1048576 --ws-per-message-deflate false --no-access-log

# A Celery worker, needed only when REDIS_URL is set (otherwise tasks run inline).
worker: install
	$(BIN)/celery -A support_bot worker --loglevel INFO --concurrency 2

# The chat path under load beside bare baselines, on PostgreSQL and Redis at
# 127.0.0.1 (docs/performance.md); writes bench/results/.
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run

test: install lint typecheck pytest

lint:
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck:
	$(BIN)/mypy .

pytest:
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var staticfiles
