"""promtool (Debian's ``prometheus`` package) for tests that check metrics and rules.

Outside CI a machine without promtool skips those tests; in CI (``CI=true``)
a missing promtool fails them, so the check cannot quietly stop running.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def path() -> str:
    """promtool's path; skips the test when it is absent outside CI, fails it in CI."""
    found = shutil.which("promtool")
    if found:
        return found
    message = "promtool is missing: SQS_BROKER_PROMTOOL=1 scripts/bootstrap installs it"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """``promtool *args`` with ``stdin``; output as text."""
    return subprocess.run(
        [path(), *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
