"""Wiring: system checks, and the process-wide hooks, each behind its own setting.

:meth:`SqsBrokerConfig.ready` is the one place that changes anything outside
the app; docs/architecture.md lists each hook. Defaults on:

- ``SQS_BROKER_LOG_SCRUBBING``: the global log-record factory scrubs secrets;
- ``SQS_BROKER_START_GUARD``: a worker bootstep refuses to start on E001 (and E018
  when no credentials can be found at all);
- ``SQS_BROKER_PUBLISH_GUARD``: the Celery app's ``amqp_cls`` gets the ETA
  guard and native SQS delays;
- ``SQS_BROKER_RUNSERVER``: ``runserver`` exits at once on E001;
- ``SQS_BROKER_REVOCATIONS``: a worker bootstep loads the task ids revoked in
  the database (``sqs_revoke``) into Celery's own revoked set, and keeps it fresh.

Off by default: ``SQS_BROKER_TELEMETRY`` (worker signal handlers and a bootstep;
beat's heartbeat, started on ``beat_init``); ``SQS_BROKER_REMOTE_CONTROL`` (the
Celery app's mailbox keeps one reply queue per thread: :mod:`sqs_broker.control`).

In workers with remote control on, a ``worker_shutdown`` handler that deletes
the worker's mailbox queue and its SNS subscription (:mod:`sqs_broker.pidbox_cleanup`).

In workers only, the transport's consumer bootstep and its handlers of
Celery's rejection signals (:mod:`sqs_broker.transport.worker`): they act on
sqs_broker's transport alone, so ``SQS_TRANSPORT=kombu`` switches them off.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class SqsBrokerConfig(AppConfig):
    name = "sqs_broker"
    verbose_name = _("SQS broker")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sqs_broker import checks as sqs_checks

        checks.register(sqs_checks.check_debug_credentials, checks.Tags.security)
        checks.register(sqs_checks.check_configuration, "sqs_broker")
        checks.register(sqs_checks.check_deploy, "sqs_broker", deploy=True)
        install_hooks()


def install_hooks() -> None:
    """The process-wide hooks the settings leave on; each is safe to install twice."""
    from sqs_broker.conf import app_settings
    from sqs_broker.topology import celery_app

    if app_settings.LOG_SCRUBBING:
        from sqs_broker.redact import install_log_scrubbing

        # Before any worker or server logs: every record, of every logger.
        install_log_scrubbing()
    # The app SQS_BROKER_CELERY_APP names (else the current one), as every face uses.
    app = celery_app()
    if app_settings.START_GUARD:
        from sqs_broker import guard

        # Celery builds the worker's blueprint after django.setup(), so a step
        # added here still runs in `celery -A project worker`.
        guard.install(app)
    if app_settings.PUBLISH_GUARD:
        from sqs_broker import publishing

        # The ETA guard and native SQS delays, for every task this app publishes.
        publishing.install(app)
    if app_settings.REMOTE_CONTROL:
        from sqs_broker import control

        # Every inspect/control call of a thread reuses one reply queue.
        control.install(app)
    from celery import signals

    if app_settings.TELEMETRY:
        # Only a worker loads the recorder and its bootstep: celeryd_init is
        # sent by `celery worker` alone, after Django is set up and before the
        # worker builds its blueprint, so the step added then still runs.
        signals.celeryd_init.connect(_install_telemetry, weak=False)
        # Beat's own heartbeat, whose progress is its ticks: beat_init is sent by
        # the beat service alone, just before its first tick.
        signals.beat_init.connect(_install_beat_telemetry, weak=False)
    # Likewise the transport's worker side: web processes never load the transport.
    signals.celeryd_init.connect(_install_transport, weak=False)
    if app_settings.REVOCATIONS:
        # Same reason as telemetry's: a worker alone loads the step.
        signals.celeryd_init.connect(_install_revocations, weak=False)
    # A worker's remote-control mailbox, removed at its warm shutdown (remote control on only).
    signals.celeryd_init.connect(_install_pidbox_cleanup, weak=False)
    if app.conf.get("worker_enable_remote_control"):
        from sqs_broker import pidbox_cleanup

        # A caller's reply queues, deleted at exit (after control.install names them).
        pidbox_cleanup.delete_replies_at_exit(app)


def _install_telemetry(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    from sqs_broker.telemetry import recorder

    recorder.install(instance.app)


def _install_beat_telemetry(sender: Any = None, **kwargs: Any) -> None:
    from sqs_broker.telemetry import beat

    beat.on_beat_init(sender, **kwargs)


def _install_transport(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    from sqs_broker.conf import app_settings
    from sqs_broker.transport import worker

    # The transport counts poison through this, and imports no telemetry itself.
    worker.install(instance.app, on_poison=_count_poison if app_settings.TELEMETRY else None)


def _count_poison(queue: str, task: str | None) -> None:
    from sqs_broker.telemetry import recorder

    current = recorder.recorder()
    if current is not None:
        current.poisoned(queue, task)


def _install_revocations(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    from sqs_broker import revocation_sync

    revocation_sync.install(instance.app)


def _install_pidbox_cleanup(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    from sqs_broker import pidbox_cleanup

    pidbox_cleanup.install(instance.app)
