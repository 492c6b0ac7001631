"""sqs_broker.findings.servers: the API token (E024) and unguarded WSGI/ASGI entry points (W020)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from sqs_broker import checks
from sqs_broker.findings import servers
from tests.findings.common import app_for

SHORT = "CanaryShortTok"  # 14 characters


@pytest.mark.parametrize("token", [SHORT, 12345678901234567890, ["x" * 20]])
def test_e024__a_token_stats_json_would_refuse(token: object) -> None:
    """E024 for a short or non-string token, and the message never shows the token."""
    with override_settings(SQS_BROKER_API_TOKEN=token):
        e024 = servers.api_token(app_for())
    assert e024 is not None and e024.id == "sqs_broker.E024"
    assert SHORT not in e024.message + e024.hint
    # A clean shell has python3, not python: the hint's command runs there as written.
    assert "python3 -c 'import secrets" in e024.hint


@pytest.mark.parametrize("token", [None, "", "a-long-enough-token-0123"])
def test_e024__valid_or_unset_token_is_fine(token: object) -> None:
    """No E024 for a token of 16 characters or more, or none."""
    with override_settings(SQS_BROKER_API_TOKEN=token):
        assert servers.api_token(app_for()) is None


def test_e024__check_stops_the_process_before_it_serves() -> None:
    """manage.py check (and so runserver and migrate) fails on a short token."""
    with override_settings(SQS_BROKER_API_TOKEN=SHORT), pytest.raises(SystemCheckError) as err:
        call_command("check")
    assert "sqs_broker.E024" in str(err.value) and SHORT not in str(err.value)


def _entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """A package of its own (a fresh name: packages stay imported) whose wsgi.py is ``source``."""
    name = f"entrypoints_{tmp_path.name.replace('-', '_')}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "wsgi.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}.wsgi.application"


def test_w020__djangos_own_wsgi_handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """W020 when wsgi.py builds the application with django.core's handler; not importing it."""
    dotted = _entry_points(
        tmp_path,
        monkeypatch,
        "raise RuntimeError('imported')\n"
        "from django.core.wsgi import get_wsgi_application\n"
        "application = get_wsgi_application()\n",
    )
    with override_settings(WSGI_APPLICATION=dotted):
        found = servers.unguarded_entry_points(app_for())
        deploy = checks.check_deploy(None)
        normal = checks.check_configuration(None)
    assert [f.id for f in found] == ["sqs_broker.W020"] and dotted[: -len(".application")] in found[
        0
    ].message
    assert [m.id for m in deploy] == ["sqs_broker.W020"]
    assert "sqs_broker.W020" not in [m.id for m in normal]


def test_w020__guarded_or_unknown_entry_points_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's guarded wsgi.py/asgi.py, a missing module and another server: no W020."""
    assert servers.unguarded_entry_points(app_for()) == []
    dotted = _entry_points(tmp_path, monkeypatch, "application = object()\n")
    for value in (dotted, "no.such.module.application", "application"):
        with override_settings(WSGI_APPLICATION=value, ASGI_APPLICATION=value):
            assert servers.unguarded_entry_points(app_for()) == []
