"""sqs_broker.findings.run and base: the passes over the registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings, topology
from sqs_broker.findings import base
from sqs_broker.topology import Topology
from tests.findings.common import (
    app_for,
)


def test_offline__default_configuration_has_no_error() -> None:
    """sqs_broker's defaults give no error, only the soft-shutdown warning and information."""
    found = findings.offline(app_for())
    assert {f.level for f in found if f.id != "sqs_broker.W005"} <= {"info"}, found


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Checks registered by a test are forgotten after it."""
    before = list(base._registry)
    yield
    base._registry[:] = before


def test_register__a_new_check_runs_in_its_stage(scratch_registry: None) -> None:
    """A function registered as offline joins every offline pass, and only those."""
    seen: list[Topology] = []

    @base.register("offline")
    def new_pitfall(topo: Topology) -> base.Finding:
        seen.append(topo)
        return base.make("sqs_broker.I004", "m", "h", queue="probe")

    found = findings.offline(app_for())
    assert [f.queue for f in found if f.id == "sqs_broker.I004"] == ["probe"]
    assert len(seen) == 1 and seen[0].is_sqs
    assert new_pitfall not in [c.function for c in base.registered("access")]


def test_register__twice_is_refused(scratch_registry: None) -> None:
    """Registering one function twice is a mistake, said at import time."""

    def twice(topo: Topology) -> None:
        return None

    base.register("offline")(twice)
    with pytest.raises(ValueError, match="registered twice"):
        base.register("offline")(twice)


def test_registered__topic_modules_and_stages() -> None:
    """Every check lives in a topic module; each stage of a pass has checks."""
    modules = {c.function.__module__ for c in base._registry}
    assert len(modules) >= 5, modules
    stages = {c.stage for c in base._registry}
    assert stages == {"offline", "access", "queue", "account", "measured"}
    assert all(m.startswith("sqs_broker.findings.") for m in modules)


def test_offline__reads_the_configuration_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One offline pass resolves the app's queues once, however many checks read them."""
    calls: list[object] = []
    real = topology.declared_queues

    def counted(app: object) -> list[str]:
        calls.append(app)
        return real(app)  # type: ignore[arg-type]

    monkeypatch.setattr(topology, "declared_queues", counted)
    findings.offline(app_for({"SQS_QUEUE_NAME_PREFIX": "app.prod."}))
    assert len(calls) == 1


def test_checks__no_check_asks_the_app_directly() -> None:
    """Topic modules read the Topology, not ``app.conf`` or sqs's per-app helpers."""
    package = Path(findings.__file__).parent
    for path in package.glob("*.py"):
        text = path.read_text()
        for needle in ("app.conf.broker", "sqs.canonical_name(", "sqs.declared_queues("):
            assert needle not in text, f"{path.name} uses {needle}"
