"""The example project: Django + Celery on SQS with sqs_broker."""

from .celery import app as celery_app

__all__ = ("celery_app",)
