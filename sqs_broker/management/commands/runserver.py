"""``runserver`` that exits at once, instead of waiting for a code change, on E001.

Django's own ``runserver`` reports failed system checks and then keeps its
autoreloader watching files; E001 comes from the environment, so no edit
would clear it.

Django runs the ``runserver`` of the first app in ``INSTALLED_APPS`` that has
one. This one extends the ``runserver`` that would have run without it: the
next app's after ``sqs_broker`` (``daphne``, ``channels``,
``django.contrib.staticfiles``), else Django's own. So ``sqs_broker`` listed
before ``daphne`` keeps daphne's ASGI server and adds the refusal.
``SQS_BROKER_RUNSERVER = False`` turns the refusal off (the next command
then runs unchanged).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from sqs_broker.conf import app_settings
from sqs_broker.guard import EXIT_STATUS, refuse_unsafe_start


def next_runserver() -> type[BaseCommand]:
    """The ``runserver`` command Django would run if ``sqs_broker`` had none."""
    names = [config.name for config in apps.get_app_configs()]
    after = names[names.index("sqs_broker") + 1 :] if "sqs_broker" in names else []
    for name in after:
        target = f"{name}.management.commands.runserver"
        try:
            module = import_module(target)
        except ModuleNotFoundError as exc:
            # Only "this app has no runserver"; a broken import inside one is raised.
            if exc.name is None or not target.startswith(exc.name):
                raise
            continue
        command: type[BaseCommand] = module.Command
        return command
    from django.core.management.commands.runserver import Command as Core

    return Core


class Command(next_runserver()):  # type: ignore[misc]
    def handle(self, *args: Any, **options: Any) -> None:
        if app_settings.RUNSERVER:
            try:
                refuse_unsafe_start()
            except ImproperlyConfigured as exc:
                # The status every other process stops with on a configuration error.
                raise CommandError(str(exc), returncode=EXIT_STATUS) from None
        super().handle(*args, **options)
