"""The test suite's own wiring: no server at settings import, fresh module state per test."""

from __future__ import annotations

import time

from sqs_broker import actions, cache, stats
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
    actions._move_unsupported.add("http://left.behind")
    stats._submit.__globals__["_executor"] = stats.ThreadPoolExecutor(max_workers=1)


def test_module_state__empty_at_the_start_of_each_test_part_two() -> None:
    """...and the next one starts without them."""
    assert cache.get(cache.key("online", "left", "behind")) is None
    assert not actions._move_unsupported
    assert stats._executor is None
