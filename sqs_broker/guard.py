"""Servers and workers refuse to start with DEBUG and keys in the broker URL.

``manage.py check`` and ``sqs_check`` must still run and report E001, so the
refusal is not in ``AppConfig.ready()`` (which every command runs) but where
a process starts serving: :func:`get_wsgi_application` and
:func:`get_asgi_application` for web servers, and :class:`StartGuard`, a
Celery worker bootstep, for workers. ``runserver`` already stops on E001
because it runs the system checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import bootsteps
from django.core.exceptions import ImproperlyConfigured

from sqs_broker import findings
from sqs_broker.settings import check_broker_url

if TYPE_CHECKING:
    from celery import Celery
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler


def refuse_unsafe_start(app: Celery | None = None) -> None:
    """Raise ``ImproperlyConfigured`` when E001 holds or the broker URL cannot be parsed.

    A settings module may set ``CELERY_BROKER_URL`` itself, past the check
    :mod:`sqs_broker.settings` makes on the environment's: a secret left
    unquoted there would be read as the host and shown in every error.
    """
    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    check_broker_url(app.conf.broker_url or "")
    finding = findings.unsafe_debug(app)
    if finding is not None:
        raise ImproperlyConfigured(f"{finding.id}: {finding.message} {finding.hint}")


def get_wsgi_application() -> WSGIHandler:
    """Django's WSGI application, after the start-up refusal."""
    from django.core.wsgi import get_wsgi_application as django_wsgi

    application = django_wsgi()
    refuse_unsafe_start()
    return application


def get_asgi_application() -> ASGIHandler:
    """Django's ASGI application, after the start-up refusal."""
    from django.core.asgi import get_asgi_application as django_asgi

    application = django_asgi()
    refuse_unsafe_start()
    return application


class StartGuard(bootsteps.Step):
    """A worker bootstep that stops ``celery worker`` before it consumes.

    Celery swallows exceptions raised in signal handlers, so the refusal
    must be a bootstep: an exception here ends the worker with status 1.
    """

    label = "sqs_broker start guard"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        refuse_unsafe_start(parent.app)
        super().__init__(parent, **kwargs)


def install(app: Celery) -> None:
    """Add the start guard to ``app``'s worker; safe to call more than once.

    Once Django's settings are loaded (``AppConfig.ready()`` calls this in
    every process), a broker URL that cannot be parsed is refused here: the
    worker, beat, ``.delay()`` and every page would otherwise fail on it
    later with a piece of the secret in the error.
    """
    from django.conf import settings

    if settings.configured:
        check_broker_url(app.conf.broker_url or "")
    app.steps["worker"].add(StartGuard)
