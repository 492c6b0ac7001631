"""Celery on Amazon SQS for Django: safe settings, pre-deploy checks, a dashboard."""

from __future__ import annotations

__version__ = "0.1.0"
