"""Findings about how the project's servers start and are reached: E024, W020.

These read Django settings (the app's own and the WSGI/ASGI entry points),
not the Celery app: they apply whatever the broker is.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from sqs_broker.conf import app_settings
from sqs_broker.findings.base import Finding, make, register

if TYPE_CHECKING:
    from sqs_broker.topology import Topology

#: What an entry point's source says when it serves through sqs_broker's guard.
_GUARDED = ("sqs_broker.guard", "from sqs_broker import guard")


@register("offline", applies="any")
def api_token(topo: Topology) -> Finding | None:
    """E024: ``SQS_BROKER_API_TOKEN`` that stats.json and metrics would refuse at request time."""
    try:
        app_settings.API_TOKEN  # noqa: B018 - reading it validates it
    except ImproperlyConfigured:
        # The message names the rule, never the value: the token is a secret.
        return make(
            "sqs_broker.E024",
            _(
                "SQS_BROKER_API_TOKEN is not a string of at least 16 characters: every "
                "request to stats.json and metrics would fail with a server error."
            ),
            _(
                "Set SQS_BROKER_API_TOKEN to a random string of at least 16 characters "
                "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), or to None."
            ),
        )
    return None


def _entry_point_source(dotted: str) -> str | None:
    """The source of the module holding ``dotted`` (``mysite.wsgi.application``), unrun.

    The module is found, not imported: importing a WSGI module builds the
    application. ``None`` when it cannot be found or read.
    """
    module = dotted.rpartition(".")[0]
    if not module:
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


@register("offline", applies="any")
def unguarded_entry_points(topo: Topology) -> list[Finding]:
    """W020: WSGI_APPLICATION or ASGI_APPLICATION served by Django's own handler."""
    found = []
    for setting, wrapper in (
        ("WSGI_APPLICATION", "get_wsgi_application"),
        ("ASGI_APPLICATION", "get_asgi_application"),
    ):
        dotted = getattr(settings, setting, None)
        if not isinstance(dotted, str):
            continue
        source = _entry_point_source(dotted)
        if source is None or any(mark in source for mark in _GUARDED):
            continue
        if wrapper not in source:
            # Not Django's handler either (another server's own): nothing to say.
            continue
        found.append(
            make(
                "sqs_broker.W020",
                _(
                    "%(setting)s (%(module)s) builds its application with Django's own "
                    "%(wrapper)s: with DEBUG on and keys in the broker URL the server starts "
                    "anyway, without the refusal manage.py check and the workers give."
                )
                % {"setting": setting, "module": dotted.rpartition(".")[0], "wrapper": wrapper},
                _("Import %(wrapper)s from sqs_broker.guard instead of django.core.")
                % {"wrapper": wrapper},
            )
        )
    return found
