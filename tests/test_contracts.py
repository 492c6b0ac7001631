"""Tests of tests/contracts.py: the package keeps its contracts; the checker sees breaches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import contracts
from tests.contracts import ROOT


def test_contracts__hold_for_sqs_broker() -> None:
    """No cycle, worker apart from web, library apart from project, no module over 600 lines."""
    assert contracts.breaches() == []
    assert contracts.main() == 0


def test_admin__thin() -> None:
    """admin.py only wires URLs and permissions: at most 200 lines."""
    assert len((contracts.PACKAGE / "admin.py").read_text().splitlines()) <= 200


def _package(root: Path, files: dict[str, str]) -> Path:
    package = root / "sqs_broker"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_breaches__each_contract_can_fail(tmp_path: Path) -> None:
    """A cycle through a function-level import, a worker loading the dashboard, a view
    importing the transport, an import of project and a long module are each reported;
    an import under TYPE_CHECKING is not."""
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "stats.py": "def f():\n    from sqs_broker import charts\n",
            "charts.py": "from sqs_broker import stats\n",
            "apps.py": "from sqs_broker.dashboard import views\n",
            "dashboard/__init__.py": "",
            "dashboard/views.py": "import sqs_broker.transport\nimport project.celery\n",
            "transport/__init__.py": "",
            "topology.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from sqs_broker import stats\n",
            "big.py": "x = 1\n" * (contracts.MAX_LINES + 1),
        },
    )
    found = contracts.breaches(contracts.build(package))
    assert found == [
        "import cycle: sqs_broker.charts <-> sqs_broker.stats",
        "worker loads web-only sqs_broker.dashboard",
        "worker loads web-only sqs_broker.dashboard.views",
        "sqs_broker.dashboard.views:1 imports the transport (sqs_broker.transport)",
        "sqs_broker.dashboard.views:2 imports the example project (project.celery)",
        "sqs_broker.stats:2 imports sqs_broker.charts inside a function",
        f"sqs_broker.big has {contracts.MAX_LINES + 1} lines (at most {contracts.MAX_LINES})",
    ]


def test_imports__before_django_settings() -> None:
    """What a project's settings and Celery module import loads without Django's settings."""
    code = (
        "import sqs_broker, sqs_broker.settings, sqs_broker.guard, sqs_broker.publishing, "
        "sqs_broker.transport; print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
