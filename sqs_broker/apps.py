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
        from sqs_broker import checks as sqs_checks
        from sqs_broker import guard, publishing
        from sqs_broker.conf import app_settings
        from sqs_broker.redact import install_log_scrubbing
        from sqs_broker.topology import celery_app

        # Before any worker or server logs: every record, of every logger.
        install_log_scrubbing()

        checks.register(sqs_checks.check_debug_credentials, checks.Tags.security)
        checks.register(sqs_checks.check_configuration, "sqs_broker")
        # Celery builds the worker's blueprint after django.setup(), so a step
        # added here still runs in `celery -A project worker`.
        # The app SQS_BROKER_CELERY_APP names (else the current one), as every face uses.
        app = celery_app()
        guard.install(app)
        # The ETA guard and native SQS delays, for every task this app publishes.
        publishing.install(app)
        if app_settings.TELEMETRY:
            from sqs_broker import telemetry

            telemetry.install(app)
