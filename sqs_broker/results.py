"""A task's stored result, for people: state, exception and a scrubbed traceback.

The dashboard's task box, the peeked and dead-lettered messages and the
selective dead-letter move read results from here. With
``django_celery_results`` installed the rows are read from its table in one
query (and link to their admin page); otherwise the Celery app's own result
backend is asked, one task at a time. Tracebacks and results pass through
:func:`sqs_broker.redact.scrub` and are cut: only ``redact`` decides what may
be shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypedDict

from django.apps import apps
from django.urls import NoReverseMatch, reverse

from sqs_broker import topology
from sqs_broker.redact import scrub

if TYPE_CHECKING:
    from celery import Celery

#: Characters of a traceback shown (its end: the raising frame and the exception).
TRACEBACK_CHARS = 4000
#: Characters of a result or exception message shown.
RESULT_CHARS = 500
#: Task ids looked up per call at most (a peek shows 10, a move step reads 10 at a time).
MAX_IDS = 100


class TaskResultRow(TypedDict):
    """What a result backend knows of one task, safe to show."""

    task_id: str
    task_name: str | None
    state: str
    #: ``"ValueError: boom"`` for a failure, else ``None``.
    exception: str | None
    traceback: str | None
    result: str | None
    date_done: str | None
    #: The django_celery_results admin page of the row, when that app is installed.
    admin_url: str | None
    source: str


def _cut(text: str | None, limit: int, tail: bool = False) -> str | None:
    if not text:
        return None
    if len(text) > limit:
        text = "…" + text[-limit:] if tail else text[:limit] + "…"
    return scrub(text)


def _exception(meta: Any) -> str | None:
    """``"Type: message"`` from a stored failure (Celery's exc_type/exc_message JSON)."""
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    if not isinstance(meta, dict) or "exc_type" not in meta:
        return None
    message = meta.get("exc_message")
    if isinstance(message, list | tuple):
        message = ", ".join(str(m) for m in message)
    return _cut(f"{meta['exc_type']}: {message or ''}".rstrip(": "), RESULT_CHARS)


def _admin_url(pk: Any) -> str | None:
    try:
        return reverse("admin:django_celery_results_taskresult_change", args=[pk])
    except NoReverseMatch:
        return None


def _from_django_celery_results(ids: list[str]) -> dict[str, TaskResultRow]:
    from django_celery_results.models import TaskResult

    found: dict[str, TaskResultRow] = {}
    for row in TaskResult.objects.filter(task_id__in=ids):
        failed = row.status in ("FAILURE", "RETRY")
        found[row.task_id] = {
            "task_id": row.task_id,
            "task_name": row.task_name,
            "state": row.status,
            "exception": _exception(row.result) if failed else None,
            "traceback": _cut(row.traceback, TRACEBACK_CHARS, tail=True),
            "result": None if failed else _cut(row.result, RESULT_CHARS),
            "date_done": row.date_done.isoformat() if row.date_done else None,
            "admin_url": _admin_url(row.pk),
            "source": "django_celery_results",
        }
    return found


def _from_backend(ids: list[str], app: Celery) -> dict[str, TaskResultRow]:
    from celery.backends.base import DisabledBackend

    backend = app.backend
    if isinstance(backend, DisabledBackend):
        return {}
    found: dict[str, TaskResultRow] = {}
    for task_id in ids:
        meta = backend.get_task_meta(task_id)
        state = str(meta.get("status") or "PENDING")
        if state == "PENDING":
            continue  # Celery's answer for an id it has never heard of
        failed = state in ("FAILURE", "RETRY")
        result = meta.get("result")
        if failed and isinstance(result, BaseException):
            exception = _cut(f"{type(result).__name__}: {result}", RESULT_CHARS)
        else:
            exception = _exception(result) if failed else None
        done = meta.get("date_done")
        found[task_id] = {
            "task_id": task_id,
            "task_name": meta.get("name"),
            "state": state,
            "exception": exception,
            "traceback": _cut(meta.get("traceback"), TRACEBACK_CHARS, tail=True),
            "result": None if failed else _cut(repr(result), RESULT_CHARS),
            "date_done": str(done) if done else None,
            "admin_url": None,
            "source": type(backend).__name__,
        }
    return found


def lookup(task_ids: Iterable[str], app: Celery | None = None) -> dict[str, TaskResultRow]:
    """The stored results of ``task_ids`` that a backend knows, by task id.

    django_celery_results when installed (one query), else the app's result
    backend; an id no backend knows is simply absent. Errors of the backend
    propagate: the caller says the lookup failed rather than "not found".
    """
    ids = list(dict.fromkeys(str(t) for t in task_ids if t))[:MAX_IDS]
    if not ids:
        return {}
    if apps.is_installed("django_celery_results"):
        return _from_django_celery_results(ids)
    return _from_backend(ids, topology.celery_app(app))
