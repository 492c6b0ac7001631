"""Tests of sqs_broker.cache's process caches: one registry, one reset."""

from __future__ import annotations

import pytest

from sqs_broker import actions, cache, publishing, sqs, stats  # noqa: F401 - their caches

pytestmark = pytest.mark.pure


def test_locals__every_process_cache_is_registered() -> None:
    """Clients, STS credentials, CloudWatch ages, visibility timeouts, move support, passes."""
    names = {local.name for local in cache.locals_()}
    assert {
        "boto3 clients",
        "STS credentials",
        "CloudWatch ages",
        "visibility timeouts",
        "endpoints without message moves",
        "gather pool",
        "passes in flight",
    } <= names


def test_reset__empties_every_local_and_hands_over_what_it_dropped() -> None:
    """reset() clears each registered cache; on_reset sees the entries dropped."""
    dropped: list[dict[str, int]] = []
    mine: cache.Local[str, int] = cache.Local("test cache", on_reset=dropped.append)
    try:
        mine.put("a", 1)
        for local in cache.locals_():
            if local is not mine and local.name != "gather pool":
                local.put(("test",), 1)
        cache.reset()
        assert [local.name for local in cache.locals_() if local.entries] == []
        assert dropped == [{"a": 1}]
    finally:
        cache._locals.remove(mine)
