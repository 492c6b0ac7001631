"""sqs_broker.apps: each process-wide hook is installed by default and can be switched off."""

from __future__ import annotations

import logging

import pytest
from celery import Celery
from django.core.management import get_commands, load_command_class
from django.test import override_settings

from sqs_broker.apps import install_hooks
from sqs_broker.guard import StartGuard
from sqs_broker.management.commands.runserver import next_runserver


def _installed(app: Celery) -> dict[str, bool]:
    return {
        "log": getattr(logging.getLogRecordFactory(), "scrubs_secrets", False),
        "start": StartGuard in app.steps["worker"],
        "publish": app.amqp_cls == "sqs_broker.publishing:GuardedAMQP",
    }


def test_install_hooks__all_on_by_default(plain_factory: None) -> None:
    """Log scrubbing, the worker start guard and the publishing guard are installed."""
    app = Celery("hooks", set_as_current=False)
    with override_settings(SQS_BROKER_CELERY_APP=app):
        install_hooks()
    assert _installed(app) == {"log": True, "start": True, "publish": True}


def test_install_hooks__each_can_be_switched_off(plain_factory: None) -> None:
    """With the settings False, the process and the Celery app are left as they were."""
    app = Celery("hooks", set_as_current=False)
    with override_settings(
        SQS_BROKER_CELERY_APP=app,
        SQS_BROKER_LOG_SCRUBBING=False,
        SQS_BROKER_START_GUARD=False,
        SQS_BROKER_PUBLISH_GUARD=False,
    ):
        install_hooks()
    assert _installed(app) == {"log": False, "start": False, "publish": False}


def test_install_hooks__uses_the_configured_app(plain_factory: None) -> None:
    """ready()'s hooks go to SQS_BROKER_CELERY_APP, not merely Celery's current app."""
    from celery import current_app

    before = current_app._get_current_object()
    current = Celery("current")  # becomes Celery's current app
    try:
        mine = Celery("mine", set_as_current=False)
        with override_settings(SQS_BROKER_CELERY_APP=mine):
            install_hooks()
        assert _installed(mine)["publish"] and not _installed(current)["publish"]
    finally:
        before.set_current()


def test_runserver__extends_the_next_apps_command() -> None:
    """Ours is the runserver Django runs, and it extends the one listed after sqs_broker."""
    from django.contrib.staticfiles.management.commands.runserver import Command as Static

    assert get_commands()["runserver"] == "sqs_broker"
    assert next_runserver() is Static
    assert issubclass(type(load_command_class("sqs_broker", "runserver")), Static)


def test_runserver__daphne_after_sqs_broker_keeps_daphnes_server(tmp_path, monkeypatch) -> None:
    """An ASGI server app listed after sqs_broker (daphne, say) still serves runserver."""
    package = tmp_path / "asgiserver" / "management" / "commands"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("")
    (package / "runserver.py").write_text(
        "from django.core.management.commands.runserver import Command as Base\n"
        "class Command(Base):\n    asgi = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from django.conf import settings

    apps_list = list(settings.INSTALLED_APPS)
    apps_list.insert(apps_list.index("sqs_broker") + 1, "asgiserver")
    with override_settings(INSTALLED_APPS=apps_list):
        assert getattr(next_runserver(), "asgi", False) is True


def test_runserver__setting_off_skips_the_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQS_BROKER_RUNSERVER=False runs the next runserver as it is, E001 or not."""
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management.base import CommandError

    from sqs_broker.management.commands import runserver

    served: list[bool] = []
    monkeypatch.setattr(next_runserver(), "handle", lambda self, *a, **k: served.append(True))

    def refuse() -> None:
        raise ImproperlyConfigured("sqs_broker.E001: refused")

    monkeypatch.setattr(runserver, "refuse_unsafe_start", refuse)
    with override_settings(SQS_BROKER_RUNSERVER=True), pytest.raises(CommandError, match="E001"):
        runserver.Command().handle()
    assert served == []
    with override_settings(SQS_BROKER_RUNSERVER=False):
        runserver.Command().handle()
    assert served == [True]
