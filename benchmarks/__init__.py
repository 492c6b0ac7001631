"""Benchmarks of Celery on SQS with this project's settings: run ``python -m benchmarks.run``."""
