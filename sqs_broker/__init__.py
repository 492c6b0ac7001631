"""Celery on Amazon SQS for Django: safe settings, pre-deploy checks, a dashboard."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["publish_fifo", "publish_many"]


def __getattr__(name: str) -> object:
    # Lazy, so importing the package (settings, INSTALLED_APPS) loads neither Celery nor boto3.
    if name in __all__:
        from sqs_broker import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module 'sqs_broker' has no attribute {name!r}")
