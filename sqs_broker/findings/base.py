"""What a finding is, how one is made, and the registry every check joins.

A check is a small function in a topic module, registered with
:func:`register` for one stage of a pass:

- ``offline``: ``check(topo)`` reads the configuration only (no network);
- ``access``: ``check(topo)`` asks STS whom the credentials are (online);
- ``queue``: ``check(live, state)`` judges one queue SQS answered about;
- ``account``: ``check(live)`` looks at the account's queue listing;
- ``measured``: ``check(measured)`` judges measured figures (telemetry, samples).

Each returns a :class:`Finding`, ``None`` or an iterable of findings;
:mod:`sqs_broker.findings.run` runs them in registration order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqs_broker.findings.catalogue import CATALOGUE, UNCHECKABLE

Level = Literal["error", "warning", "info"]
LEVELS: tuple[Level, ...] = ("info", "warning", "error")

#: Dollars per million SQS requests (standard queues, after the free tier).
PRICE_PER_MILLION = 0.40
SECONDS_PER_MONTH = 30 * 86400


@dataclass(frozen=True)
class Finding:
    """One pitfall found: what is wrong, what to change, and where."""

    id: str
    level: Level
    message: str
    hint: str
    queue: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The finding as the JSON of ``sqs_check --json`` and the dashboard show it."""
        return asdict(self)


def rank(level: str) -> int:
    """Order of severity: info < warning < error."""
    return LEVELS.index(level)


def _level_of(finding_id: str) -> Level:
    letter = finding_id.rsplit(".", 1)[1][0]
    levels: dict[str, Level] = {"E": "error", "W": "warning", "I": "info"}
    return levels[letter]


def make(finding_id: str, message: str, hint: str, queue: str | None = None) -> Finding:
    """A finding whose level follows from the letter of its id."""
    if finding_id not in CATALOGUE:
        raise KeyError(f"{finding_id} is not in findings.CATALOGUE")
    return Finding(finding_id, _level_of(finding_id), message, hint, queue)


def could_not_check(found: Iterable[Finding]) -> list[Finding]:
    """The findings that mean SQS could not be checked at all (endpoint, credentials)."""
    return [f for f in found if f.id in UNCHECKABLE and f.queue is None]


def unsilenced(found: Iterable[Finding]) -> list[Finding]:
    """``found`` without the ids listed in ``SILENCED_SYSTEM_CHECKS``, as Django's ``check``."""
    from django.conf import settings

    silenced = set(getattr(settings, "SILENCED_SYSTEM_CHECKS", ()) or ())
    return [f for f in found if f.id not in silenced]


def seconds(value: float) -> str:
    """A number of seconds as messages show it (no trailing ``.0``)."""
    return f"{value:g}"


def dollars(requests: float) -> str:
    """The price of ``requests`` SQS requests, in dollars with cents."""
    return f"{requests * PRICE_PER_MILLION / 1_000_000:,.2f}"


# --- the registry -----------------------------------------------------------------

Stage = Literal["offline", "access", "queue", "account", "measured"]
#: Which brokers a check applies to: SQS only (most), any, or anything but SQS.
Applies = Literal["sqs", "any", "not_sqs"]


@dataclass(frozen=True)
class Check:
    """A registered check: the function, its stage, and when it applies."""

    function: Callable[..., Any]
    stage: Stage
    applies: Applies = "sqs"
    #: An ``access`` check whose "could not check" ends the pass (nothing else can answer).
    gate: bool = False

    @property
    def name(self) -> str:
        """``module.function``, for error messages and tests."""
        return f"{self.function.__module__}.{self.function.__qualname__}"

    def __call__(self, *args: Any) -> list[Finding]:
        """The check's findings as a list, whatever shape the function returned."""
        result = self.function(*args)
        if result is None:
            return []
        if isinstance(result, Finding):
            return [result]
        return [f for f in result if f is not None]


_registry: list[Check] = []


def register(
    stage: Stage, *, applies: Applies = "sqs", gate: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a check of ``stage``; the function is unchanged."""

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        if any(check.function is function for check in _registry):
            raise ValueError(f"{function.__qualname__} is registered twice")
        _registry.append(Check(function, stage, applies, gate))
        return function

    return decorator


def registered(stage: Stage, is_sqs: bool = True) -> list[Check]:
    """The checks of ``stage`` that apply to an SQS broker (or to another one)."""
    wanted = {"sqs", "any"} if is_sqs else {"not_sqs", "any"}
    return [c for c in _registry if c.stage == stage and c.applies in wanted]
