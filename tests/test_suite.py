"""The test suite's own wiring: no server at settings import, fresh module state per test,
helpers from tests/support, and SQS and workers only for the tests that ask for them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sqs_broker import actions, cache, stats
from tests.support import ROOT, localserver
from tests.support.env import base_env, run_python


def test_settings__importing_them_starts_no_server() -> None:
    """tests.settings fixes the moto address but starts nothing (mypy imports it too)."""
    env = {k: v for k, v in base_env().items() if k != "SQS_BROKER_TEST_ENDPOINT"}
    code = (
        "import os, django; django.setup()\n"
        "from tests.support import localserver\n"
        "print(localserver._answers(os.environ['SQS_ENDPOINT_URL']))\n"
    )
    result = run_python("-c", code, env=env, settings="tests.settings")
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


def test_module_state__empty_at_the_start_of_each_test_part_one() -> None:
    """A test leaves pools and caches behind..."""
    cache.set_many({cache.key("online", "left", "behind"): (time.time(), [])}, 60)
    actions._move_unsupported.put("http://left.behind", True)
    stats._pool.put("pool", stats.ThreadPoolExecutor(max_workers=1))


def test_module_state__empty_at_the_start_of_each_test_part_two() -> None:
    """...and the next one starts without them."""
    assert cache.get(cache.key("online", "left", "behind")) is None
    assert not actions._move_unsupported.entries
    assert not stats._pool.entries


def test_helpers__imported_from_tests_support() -> None:
    """No test or benchmark imports from tests.conftest: it holds fixtures and hooks only."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("tests", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if re.search(
            r"^\s*(from tests\.conftest import|import tests\.conftest)", path.read_text(), re.M
        )
    ]
    assert offenders == [], f"import these helpers from tests.support instead: {offenders}"


def _collected(*args: str) -> list[str]:
    """The ids pytest collects for ``args`` (one process, no run)."""
    env = {**base_env(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "--co", "-q",
         *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_marks__follow_the_fixtures_a_test_asks_for() -> None:
    """sqs and worker are set from sqs_endpoint and start_worker, however a test reaches them."""
    module = "tests/test_settings.py"
    through_worker = f"{module}::test_secret_file__worker_consumes_with_it"
    direct = f"{module}::test_secret_file__sqs_check_finds_the_credentials"
    offline = f"{module}::test_defaults__no_keys_gives_bare_url_and_long_polling"
    sqs = _collected(through_worker, direct, offline, "-m", "sqs")
    worker = _collected(through_worker, direct, offline, "-m", "worker")
    assert (sqs, worker) == ([through_worker, direct], [through_worker])


UNDECLARED = """
import os
import subprocess
import sys

import boto3


def _call(endpoint):
    try:
        boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1").list_queues()
    except Exception:
        pass  # as code under test may: the error is swallowed, the test would pass


def test_calls_the_settings_endpoint():
    _call(os.environ["SQS_BROKER_TEST_ENDPOINT"])  # what Django's settings hold


def test_calls_from_a_subprocess():
    code = "import os, sys; sys.path[:0] = [" + repr(os.path.dirname(__file__)) + "]; "
    code += "from test_undeclared import _call; _call(os.environ['SQS_ENDPOINT_URL'])"
    subprocess.run([sys.executable, "-c", code], env=dict(os.environ), check=True, timeout=60)


def test_calls_nothing():
    pass
"""


def test_tripwire__a_test_calling_sqs_undeclared_fails(tmp_path: Path) -> None:
    """A call to SQS, from the test or its subprocess, fails a test that did not ask for SQS."""
    (tmp_path / "test_undeclared.py").write_text(UNDECLARED)
    env = {**base_env(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "tests.conftest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
         str(tmp_path / "test_undeclared.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1]
    # All three pass their call; the two that called SQS fail in teardown.
    assert "3 passed, 2 errors" in summary, result.stdout[-4000:] + result.stderr[-2000:]
    for name in ("test_calls_the_settings_endpoint", "test_calls_from_a_subprocess"):
        assert f"{name} called SQS" in result.stdout, result.stdout[-4000:]
    assert "without declaring it: ask for the sqs_endpoint fixture" in result.stdout


def test_address__one_server_per_xdist_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """An address inherited from the xdist controller is replaced; a subprocess's own is kept."""
    address, owner = localserver.ADDRESS_VARIABLE, localserver.OWNER_VARIABLE
    for name in (address, owner, "PYTEST_XDIST_WORKER", "SQS_ENDPOINT_URL"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # each restored after the test
    inherited = "http://127.0.0.1:1"
    monkeypatch.setenv(address, inherited)
    monkeypatch.setenv(owner, "")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    own = localserver.address()
    assert own != inherited
    assert (os.environ["SQS_ENDPOINT_URL"], os.environ[owner]) == (own, "gw1")
    assert localserver.address() == own
    # A test's subprocess (base_env drops SQS_* variables) keeps the address it is given.
    monkeypatch.delenv(owner)
    monkeypatch.setenv(address, inherited)
    assert localserver.address() == inherited
