"""Wiring: system checks, the worker start guard and the worker-side hooks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class SqsBrokerConfig(AppConfig):
    name = "sqs_broker"
    verbose_name = _("SQS broker")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery import current_app

        from sqs_broker import checks as sqs_checks
        from sqs_broker import guard

        checks.register(sqs_checks.check_debug_credentials, checks.Tags.security)
        checks.register(sqs_checks.check_configuration, "sqs_broker")
        # Celery builds the worker's blueprint after django.setup(), so a step
        # added here still runs in `celery -A project worker`.
        guard.install(current_app._get_current_object())
