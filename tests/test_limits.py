"""sqs_broker.limits: one home for SQS's limits, kept importable where they were."""

from __future__ import annotations

import ast
from pathlib import Path

from sqs_broker import limits, publishing, settings

ROOT = Path(__file__).resolve().parent.parent


def test_settings__reexports_the_same_numbers() -> None:
    """sqs_broker.settings keeps its names, now imported from limits."""
    for name in (
        "DEFAULT_REGION",
        "DEFAULT_VISIBILITY_TIMEOUT",
        "DEFAULT_POLLING_INTERVAL",
        "DEFAULT_WAIT_TIME_SECONDS",
        "DEFAULT_STS_TOKEN_TIMEOUT",
        "MAX_VISIBILITY_TIMEOUT",
        "MAX_WAIT_TIME_SECONDS",
        "MIN_STS_TOKEN_TIMEOUT",
        "MAX_STS_TOKEN_TIMEOUT",
    ):
        assert getattr(settings, name) == getattr(limits, name), name
    assert publishing.MAX_DELAY_SECONDS == limits.MAX_DELAY_SECONDS == 900
    assert publishing.MAX_BATCH_ENTRIES == limits.MAX_BATCH_ENTRIES == 10


def test_values__as_the_sqs_and_sts_references_state() -> None:
    """The numbers SQS and STS document."""
    assert (limits.MAX_WAIT_TIME_SECONDS, limits.MAX_VISIBILITY_TIMEOUT) == (20, 43200)
    assert (limits.MIN_STS_TOKEN_TIMEOUT, limits.MAX_STS_TOKEN_TIMEOUT) == (900, 43200)
    assert (limits.MAX_QUEUE_NAME, limits.KOMBU_VISIBILITY_TIMEOUT) == (80, 1800)


def test_code__no_limit_is_written_as_a_literal_elsewhere() -> None:
    """Outside limits.py, code uses the named limits, never the number 43200, 1800 or 900."""
    for path in (ROOT / "sqs_broker").rglob("*.py"):
        if path.name == "limits.py" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # Messages and docstrings may quote the numbers for people; code may not.
            if isinstance(node, ast.Constant) and type(node.value) is int:
                assert node.value not in (900, 1800, 43200), f"{path.name}:{node.lineno}"
