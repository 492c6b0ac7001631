"""Every pitfall of Celery on SQS, found offline or on the live queues.

This module is the one place that knows the pitfalls. System checks
(:mod:`sqs_broker.checks`), ``manage.py sqs_check`` and the dashboard all
ask it and only format what it returns.

Ids are stable and never reused: ``E`` errors, ``W`` warnings, ``I``
information. :data:`CATALOGUE` lists each id with the caveat it guards;
``docs/findings.md`` holds the same table and a test keeps them equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings

from sqs_broker.redact import url_has_credentials

if TYPE_CHECKING:
    from celery import Celery

Level = Literal["error", "warning", "info"]
LEVELS: tuple[Level, ...] = ("info", "warning", "error")

#: id -> the caveat it guards. The docs table mirrors this.
CATALOGUE: dict[str, str] = {
    "sqs_broker.E001": "DEBUG is on while the broker URL carries AWS credentials: "
    "Django's debug page and error reports can expose them.",
}


@dataclass(frozen=True)
class Finding:
    """One pitfall found: what is wrong, what to change, and where."""

    id: str
    level: Level
    message: str
    hint: str
    queue: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank(level: str) -> int:
    """Order of severity: info < warning < error."""
    return LEVELS.index(level)  # type: ignore[arg-type]


def _level_of(finding_id: str) -> Level:
    letter = finding_id.rsplit(".", 1)[1][0]
    return {"E": "error", "W": "warning", "I": "info"}[letter]  # type: ignore[return-value]


def make(finding_id: str, message: str, hint: str, queue: str | None = None) -> Finding:
    """A finding whose level follows from the letter of its id."""
    if finding_id not in CATALOGUE:
        raise KeyError(f"{finding_id} is not in findings.CATALOGUE")
    return Finding(finding_id, _level_of(finding_id), message, hint, queue)


# --- offline -----------------------------------------------------------------


def debug_with_url_credentials(debug: bool, broker_url: str | None) -> Finding | None:
    """E001: DEBUG together with credentials in the broker URL."""
    if not debug or not broker_url or not url_has_credentials(broker_url):
        return None
    return make(
        "sqs_broker.E001",
        "DEBUG is on and the broker URL carries AWS credentials: Django's debug page "
        "and error reports could expose them.",
        "Turn DEBUG off, or take the keys out of the URL: leave SQS_CREDENTIALS_IN_URL "
        "false so boto3 reads them from the environment, or use an IAM role.",
    )


def _celery_app(app: Celery | None) -> Celery:
    if app is not None:
        return app
    from celery import current_app

    return current_app._get_current_object()


def broker_config(app: Celery | None = None) -> Mapping[str, Any]:
    """The broker settings the worker will really use: the Celery app's."""
    conf = _celery_app(app).conf
    return conf


def offline(app: Celery | None = None) -> list[Finding]:
    """Every pitfall that can be found without calling AWS."""
    conf = broker_config(app)
    found: list[Finding | None] = [
        debug_with_url_credentials(bool(settings.DEBUG), conf.broker_url),
    ]
    return [f for f in found if f is not None]
