"""Fixtures of the findings tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import sqs_broker.cache


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Clients and attribute caches are per configuration; start each test clean."""
    sqs_broker.cache.reset()
    yield
    sqs_broker.cache.reset()
