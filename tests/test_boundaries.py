"""The boundaries docs/architecture.md states, kept true: import directions, worker modules."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.env import base_env, run_python

PACKAGE = ROOT / "sqs_broker"

#: Modules only a web process needs: the data function, health summary, charts, actions,
#: moves, stored results, message decoding, metrics. (sqs_broker.admin, .urls and .views
#: themselves are thin and load in a worker too: Django's admin autodiscovery and the system
#: checks Celery's Django fixup runs import them.)
WEB_ONLY = (
    "sqs_broker.actions",
    "sqs_broker.dashboard",
    "sqs_broker.dashboard.charts",
    "sqs_broker.dashboard.panels",
    "sqs_broker.dashboard.rows",
    "sqs_broker.dashboard.views",
    "sqs_broker.envelopes",
    "sqs_broker.health",
    "sqs_broker.history",
    "sqs_broker.metrics",
    "sqs_broker.moves",
    "sqs_broker.results",
    "sqs_broker.stats",
    "sqs_broker.triage",
    "sqs_broker.telemetry.read",
    "prometheus_client",
)


def _imports(path: Path) -> set[str]:
    """Every sqs_broker module ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith("sqs_broker"):
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sqs_broker"))
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, set[str]]:
    return {
        _module(path): _imports(path)
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts
    }


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        # The rules and the limits know nothing of what uses them.
        ("sqs_broker.limits", "sqs_broker"),
        ("sqs_broker.topology", "sqs_broker.sqs"),
        ("sqs_broker.topology", "sqs_broker.findings"),
        # Findings are asked by the faces, never the other way round.
        ("sqs_broker.findings", "sqs_broker.stats"),
        ("sqs_broker.findings", "sqs_broker.admin"),
        ("sqs_broker.findings", "sqs_broker.views"),
        ("sqs_broker.sqs", "sqs_broker.findings"),
        ("sqs_broker.sqs", "sqs_broker.stats"),
        ("sqs_broker.sqs", "sqs_broker.actions"),
        # The data function serves the faces and does not know them.
        ("sqs_broker.stats", "sqs_broker.admin"),
        ("sqs_broker.stats", "sqs_broker.views"),
        ("sqs_broker.stats", "sqs_broker.metrics"),
        # The data and its history know nothing of the dashboard that draws them.
        ("sqs_broker.stats", "sqs_broker.dashboard"),
        ("sqs_broker.history", "sqs_broker.dashboard"),
        ("sqs_broker.telemetry", "sqs_broker.dashboard"),
        # A web process never loads the worker's transport (quarantine names are topology's).
        ("sqs_broker.stats", "sqs_broker.transport"),
        ("sqs_broker.topology", "sqs_broker.transport"),
        # The transport is handed its counter; it imports no telemetry.
        ("sqs_broker.transport", "sqs_broker.telemetry"),
    ],
)
def test_imports__run_down_the_layers(lower: str, upper: str) -> None:
    """No module of ``lower`` imports ``upper`` (or any module below it)."""
    offenders = [
        f"{module} imports {name}"
        for module, names in _sources().items()
        if module == lower or module.startswith(lower + ".")
        for name in names
        if (name == upper or name.startswith(upper + "."))
        and upper != "sqs_broker"
        or upper == "sqs_broker"
        and name.startswith("sqs_broker")
    ]
    assert offenders == []


def test_environment__read_only_by_settings() -> None:
    """Only sqs_broker.settings reads the environment, with the exceptions named here.

    redact reads the secret variables to know what to hide; findings.url hands
    ``os.environ`` to sqs_broker.settings for the raw credentials; localsqs and
    the sqs_local command run the development server.
    """
    allowed = {
        "sqs_broker.settings",
        "sqs_broker.redact",
        "sqs_broker.findings.url",
        "sqs_broker.localsqs",
        "sqs_broker.management.commands.sqs_local",
    }
    readers = {
        _module(path)
        for path in PACKAGE.rglob("*.py")
        if "os.environ" in path.read_text() or "os.getenv" in path.read_text()
    }
    assert "sqs_broker.settings" in readers
    assert sorted(readers - allowed) == []


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker__loads_no_dashboard_chart_or_view_module(start_worker, unique, tmp_path) -> None:
    """A real worker, telemetry on, after a task: none of the web-only modules is imported."""
    modules = tmp_path / "modules.txt"
    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_WAIT_TIME_SECONDS="1",
        SQS_BROKER_TELEMETRY="true",
        SQS_BROKER_TEST_MODULES_FILE=str(modules),
        PYTHONPATH=str(ROOT),
    )
    start_worker(env, extra=("--include", "tests.worker_probe"))
    from tests.support.env import make_app

    app = make_app(env)
    assert app.send_task("project.demo.tasks.add", args=(1, 2)).id
    deadline = time.monotonic() + 60
    loaded: list[str] = []
    while time.monotonic() < deadline:
        loaded = modules.read_text().split() if modules.exists() else []
        if "sqs_broker.telemetry.recorder" in loaded and "sqs_broker.findings" in loaded:
            break
        time.sleep(0.2)
    assert "sqs_broker.findings" in loaded, loaded
    assert sorted(set(WEB_ONLY) & set(loaded)) == []
    assert "sqs_broker.admin" in loaded  # the probe sees what autodiscovery loaded


def test_web_process__loads_no_worker_recorder() -> None:
    """Django set up with telemetry on, as a web server is: no recorder, no bootstep, no signals."""
    code = (
        "import sys, django; django.setup(); "
        "print(sorted(m for m in sys.modules if m.startswith('sqs_broker.telemetry')))"
    )
    done = run_python("-c", code, env=base_env(SQS_BROKER_TELEMETRY="true"))
    assert done.returncode == 0, done.stderr
    assert "sqs_broker.telemetry.recorder" not in done.stdout
    assert "sqs_broker.telemetry.store" not in done.stdout
