"""Tests of sqs_broker.cache's process caches: one registry, one reset."""

from __future__ import annotations

import time

import pytest

from sqs_broker import actions, cache, publishing, sqs, stats  # noqa: F401 - their caches
from sqs_broker.topology import Topology
from tests.support.env import base_env, make_app


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


@pytest.mark.usefixtures("sqs_endpoint")
def test_reset__forgets_passes_and_the_pool():
    """cache.reset() leaves no cached online findings, no pass in flight and no pool."""
    stats.sqs_pass(Topology.of(make_app(base_env())))  # a pool, a pass
    cache.set_many({cache.key("online", "k"): (time.time(), [])}, 60)
    cache.reset()
    assert cache.get(cache.key("online", "k")) is None
    assert not stats._inflight.entries and not stats._pool.entries
