"""Fixtures of the findings tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sqs_broker import sqs as sqs_api


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Clients and attribute caches are per configuration; start each test clean."""
    sqs_api.clear_caches()
    yield
    sqs_api.clear_caches()
