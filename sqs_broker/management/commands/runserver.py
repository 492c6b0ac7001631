"""``runserver`` that exits at once, instead of waiting for a code change, on E001.

Django's own ``runserver`` reports failed system checks and then keeps its
autoreloader watching files; E001 comes from the environment, so no edit
would clear it. This command takes precedence over ``staticfiles``' when
``sqs_broker`` is listed before ``django.contrib.staticfiles``.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from sqs_broker.guard import refuse_unsafe_start

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import Command as Base
else:  # pragma: no cover - the example project has staticfiles
    from django.core.management.commands.runserver import Command as Base


class Command(Base):
    def handle(self, *args: Any, **options: Any) -> None:
        try:
            refuse_unsafe_start()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        super().handle(*args, **options)
