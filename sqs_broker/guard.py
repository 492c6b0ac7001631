"""Start-up refusals, and configuration errors as one line instead of a traceback.

Servers, workers, beat and ``celery events`` refuse to start with DEBUG and
keys in the broker URL. ``manage.py check`` and ``sqs_check`` must still run
and report E001, so the refusal is not in ``AppConfig.ready()`` (which every
command runs) but where a process starts serving:
:func:`get_wsgi_application` and :func:`get_asgi_application` for web
servers, :class:`StartGuard` (a worker bootstep) for workers, and a hidden
option of ``celery beat`` and ``celery events`` (with the ``beat_init``
signal as a second line for beat).
``runserver`` already stops on E001 because it runs the system checks.

A bad setting is one message, not a traceback of 50 to 120 lines through
Django, Celery and click: :func:`exit_on_configuration_error` (``manage.py``,
WSGI, ASGI) and :func:`install_excepthook` (the ``celery`` command, whose
entry point the project does not own) print ``ImproperlyConfigured: <message>``
on stderr and exit with status 2 (:data:`EXIT_STATUS`) from every command:
``manage.py`` (``runserver`` included), the worker, beat, ``celery events``;
4 for the WSGI/ASGI application, which gunicorn reads as "App failed to
load" and stops on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any

from celery import signals
from django.core.exceptions import ImproperlyConfigured

from sqs_broker.celery_types import Step
from sqs_broker.redact import install_report_masking, scrub
from sqs_broker.settings import check_broker_url
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from celery import Celery
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

#: The exit status of a command stopped by a configuration error: 2, what ``sqs_check`` and
#: ``sqs_alerts check`` call "could not check" (1 is theirs for findings and firing alerts,
#: so a cron job or CI must not read a broken configuration as an alert).
EXIT_STATUS = 2
#: The exit status of a WSGI/ASGI application that cannot load: gunicorn's
#: "App failed to load", on which its arbiter stops. On any other status it
#: boots a new worker at once, forever, printing the same error each time.
SERVER_EXIT_STATUS = 4


def configuration_message(exc: ImproperlyConfigured) -> str:
    """The one line a configuration error is shown as, scrubbed of any known secret."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"ImproperlyConfigured: {scrub(text)}"


def _say(line: str) -> None:
    # The process's own stderr: Celery's worker and beat redirect sys.stderr
    # to their logger, which would wrap the line in a log prefix.
    stream = sys.__stderr__ or sys.stderr
    stream.write(line + "\n")
    stream.flush()


@contextmanager
def exit_on_configuration_error(status: int = EXIT_STATUS) -> Iterator[None]:
    """Turn an ``ImproperlyConfigured`` raised inside into one line on stderr and an exit.

    For a process's entry point (``manage.py``, ``wsgi.py``, ``asgi.py``):
    the traceback of a settings error says nothing its message does not, and
    buries the message under dozens of lines of Django and Celery frames.
    """
    try:
        yield
    except ImproperlyConfigured as exc:
        _say(configuration_message(exc))
        raise SystemExit(status) from None


def install_excepthook() -> None:
    """Show an uncaught ``ImproperlyConfigured`` as one line, exit 2; safe to call twice.

    For the ``celery`` command: its entry point belongs to Celery, so the
    project's Celery module (which every ``celery -A`` run imports first)
    installs this instead. Other exceptions keep their traceback.
    """
    previous = sys.excepthook
    if getattr(previous, "sqs_broker", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not isinstance(exc, ImproperlyConfigured):
            previous(kind, exc, tb)
            return
        _say(configuration_message(exc))
        if hasattr(sys, "ps1") or sys.flags.interactive:
            return  # an interactive shell (celery shell, python -i) goes on
        # Python ends a process whose exception reached this hook with status 1,
        # and no hook can change that; manage.py's status for the same error is 2.
        # A configuration error stops a process before it serves: flushing the
        # logs and the standard streams is all that its exit handlers would do.
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                with suppress(OSError, ValueError):
                    stream.flush()
        os._exit(EXIT_STATUS)

    hook.sqs_broker = True  # type: ignore[attr-defined]
    sys.excepthook = hook


#: SQS's error codes for a queue that does not exist (query and JSON protocols).
NO_QUEUE_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


def _missing_queue(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in NO_QUEUE_CODES:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class MissingQueueLine(logging.Filter):
    """Beat's "Message Error" for a queue SQS does not have: one line, no traceback or stack.

    Celery logs it with the stack and the traceback of a ``SchedulingError``,
    every tick: 40 lines whose only news is the first. The transport declares a
    vanished queue again on the next publish, so what is left here is a queue
    it may not create: a predefined one (``SQS_PREDEFINED_QUEUES``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and _missing_queue(record.exc_info[1]):
            from sqs_broker.redact import scrub

            text = " ".join(str(record.exc_info[1]).split())
            record.msg = (
                "%s (the queue does not exist on SQS: a predefined queue is never created; "
                "create it or correct SQS_PREDEFINED_QUEUES)"
            )
            record.args = (scrub(text),)
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def install_missing_queue_line() -> None:
    """Put :class:`MissingQueueLine` on Celery's beat logger; safe to call twice."""
    beat_logger = logging.getLogger("celery.beat")
    if not any(isinstance(f, MissingQueueLine) for f in beat_logger.filters):
        beat_logger.addFilter(MissingQueueLine())


def refuse_unsafe_start(app: Celery | None = None) -> None:
    """Raise ``ImproperlyConfigured`` when E001 holds or the broker URL cannot be parsed.

    A settings module may set ``CELERY_BROKER_URL`` itself, past the check
    :mod:`sqs_broker.settings` makes on the environment's: a secret left
    unquoted there would be read as the host and shown in every error.
    """
    # Here, not at the top: the project's Celery module imports this module before
    # Django's settings are loaded, and the findings' messages need them.
    from sqs_broker import findings

    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    check_broker_url(app.conf.broker_url or "")
    finding = findings.unsafe_debug(Topology.of(app))
    if finding is not None:
        raise ImproperlyConfigured(f"{finding.id}: {finding.message} {finding.hint}")


def refuse_without_credentials(app: Celery) -> None:
    """Raise ``ImproperlyConfigured`` (E018) when a worker could find no credentials at all.

    Only with AWS's own endpoint (see :func:`sqs_broker.findings.missing_credentials`):
    kombu would otherwise retry the connection a hundred times, showing the host as
    localhost and a masked password that does not exist.
    """
    from sqs_broker import findings

    finding = findings.missing_credentials(Topology.of(app))
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


class StartGuard(Step):
    """A worker bootstep that stops ``celery worker`` before it consumes.

    Celery swallows exceptions raised in signal handlers, so the refusal
    must be a bootstep: an exception here ends the worker with status 1.
    """

    label = "sqs_broker start guard"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        refuse_unsafe_start(parent.app)
        refuse_without_credentials(parent.app)
        super().__init__(parent, **kwargs)


def _on_beat_init(sender: Any = None, **kwargs: Any) -> None:
    # Celery logs and swallows an Exception raised in a signal handler, but
    # not SystemExit: beat stops here, before its first tick.
    app = getattr(sender, "app", None)
    if app is not None and getattr(app, "sqs_broker_guarded", False):
        with exit_on_configuration_error():
            refuse_unsafe_start(app)


def _refuse_before_command(ctx: Any, param: Any, value: Any) -> None:
    # A hidden option's callback: click runs it for every option, given or
    # not, before the command's body, so beat and `celery events` stop here
    # before they print a banner or connect.
    app = getattr(getattr(ctx, "obj", None), "app", None)
    if app is None:
        return
    import django
    from django.apps import apps

    with exit_on_configuration_error():
        if not apps.ready:
            # The refusal's message is translated; Celery sets Django up for
            # beat only later, and never for `celery events`.
            django.setup()
        refuse_unsafe_start(app)


def _start_guard_option() -> Any:
    import click

    return click.Option(
        ["--sqs-broker-start-guard"],
        is_flag=True,
        hidden=True,
        expose_value=False,
        callback=_refuse_before_command,
        help="Internal: runs sqs_broker's start-up refusal.",
    )


_beat_connected = False


def install(app: Celery) -> None:
    """Add the start guards to ``app``'s worker, beat and events; safe to call twice.

    Call it from the project's Celery module too: ``celery events`` never
    sets Django up, so ``AppConfig.ready()`` (which also calls this) does not
    run there, and beat would print its banner first. Once Django's settings
    are loaded (``ready()``), a broker URL that cannot be parsed is refused
    here: the worker, beat, ``.delay()`` and every page would otherwise fail
    on it later with a piece of the secret in the error.
    """
    global _beat_connected
    from django.conf import settings

    if settings.configured:
        check_broker_url(app.conf.broker_url or "")
    app.steps["worker"].add(StartGuard)
    install_missing_queue_line()
    # `celery report` prints the configuration; Celery masks only `broker_url`.
    install_report_masking(app)
    if not getattr(app, "sqs_broker_guarded", False):
        app.sqs_broker_guarded = True
        # Celery's hook for a project's own command-line options; read when
        # the `celery` command builds its subcommands, so only a call from the
        # project's Celery module (before Django is set up) reaches it.
        for command in ("beat", "events"):
            app.user_options[command].add(_start_guard_option())
    if not _beat_connected:
        signals.beat_init.connect(_on_beat_init, weak=False)
        _beat_connected = True
