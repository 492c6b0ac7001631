"""Celery on Amazon SQS for Django: safe settings, pre-deploy checks, a dashboard."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    # One version number: pyproject.toml's, as installed.
    __version__ = version("sqs_broker")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["publish_fifo", "publish_many"]


def __getattr__(name: str) -> object:
    # Lazy, so importing the package (settings, INSTALLED_APPS) loads neither Celery nor boto3.
    if name in __all__:
        from sqs_broker import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module 'sqs_broker' has no attribute {name!r}")
