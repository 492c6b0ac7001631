.PHONY: run check test test-leg lint

# Local SQS (moto), a Celery worker and beat, and the admin at http://127.0.0.1:8000/admin/
# (another address: make run ADDR=127.0.0.1:8010; against real AWS: make run AWS=1)
run:
	scripts/bootstrap .venv 3.11
	scripts/run $(if $(ADDR),--addr $(ADDR)) $(if $(AWS),--aws)

# Before every commit: ruff, mypy, the migrations check and the fast tests (CONTRIBUTING.md)
check:
	scripts/check

# The whole suite: 3.11 + Django 5.2 and 3.12 + Django 6.0 on SQLite, 3.13 + Django 6.1 on PostgreSQL
test:
	scripts/test

# One leg, and optionally some tests: make test-leg LEG=3.12 TESTS=tests/test_stats.py
LEG ?= 3.11
TESTS ?=
test-leg:
	scripts/test --leg $(LEG) $(TESTS)

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check sqs_broker project tests benchmarks
