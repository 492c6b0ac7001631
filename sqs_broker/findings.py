"""Every pitfall of Celery on SQS, found offline or on the live queues.

This module is the one place that knows the pitfalls. System checks
(:mod:`sqs_broker.checks`), ``manage.py sqs_check`` and the dashboard all
ask it and only format what it returns.

Ids are stable and never reused: ``E`` errors, ``W`` warnings, ``I``
information. :data:`CATALOGUE` lists each id with the caveat it guards;
``docs/findings.md`` holds the same table and a test keeps them equal.

Findings read the Celery app's live configuration (``app.conf``) and Django
settings, never the environment: what is checked is what the worker uses.
:func:`offline` makes no network call; :func:`online` asks SQS and STS with
the bounded clients of :mod:`sqs_broker.sqs`.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from sqs_broker import sqs
from sqs_broker.conf import app_settings
from sqs_broker.redact import scrub, url_has_credentials

if TYPE_CHECKING:
    from celery import Celery

Level = Literal["error", "warning", "info"]
LEVELS: tuple[Level, ...] = ("info", "warning", "error")

#: id -> the caveat it guards. The docs table mirrors this.
CATALOGUE: dict[str, str] = {
    # --- offline: the broker URL and its credentials
    "sqs_broker.E001": "DEBUG is on while the broker URL carries AWS credentials: "
    "Django's debug page and error reports can expose them.",
    "sqs_broker.E002": "The URL's credentials do not parse back to a key and secret: an "
    "unescaped '/', '?' or '#' ends kombu's reading of the secret (use safequote), or a "
    "key has no secret.",
    "sqs_broker.W001": "The broker is not sqs://: sqs_broker's settings and checks do not apply.",
    "sqs_broker.E003": "Predefined-queue credentials look URL-encoded (%2F, %2B, %3D...): "
    "boto3 signs with them as written, so SQS answers 'signature does not match'.",
    # --- offline: polling
    "sqs_broker.E004": "wait_time_seconds outside 0-20: every ReceiveMessage is rejected.",
    "sqs_broker.I001": "polling_interval adds to long polling: an empty poll cycle lasts "
    "wait_time_seconds + polling_interval.",
    "sqs_broker.W002": "polling_interval longer than wait_time_seconds: most of each cycle "
    "nobody is listening, and new messages wait for the sleep to end.",
    "sqs_broker.W003": "Short polling with polling_interval under 1 s: a busy loop that "
    "costs CPU and requests.",
    "sqs_broker.I002": "Short polling: empty receives are billed and sample only some SQS servers.",
    # --- offline: visibility timeout and shutdown
    "sqs_broker.E005": "visibility_timeout outside 0-43200: SQS rejects it.",
    "sqs_broker.E006": "Visibility timeout shorter than the longest ETA/countdown "
    "(SQS_BROKER_MAX_ETA): the message is redelivered while the worker holds it, and the "
    "task runs again, in a loop.",
    "sqs_broker.W004": "Visibility timeout shorter than a task time limit: a task (or the "
    "prefetched messages behind it) can outlive it and run twice.",
    "sqs_broker.I003": "visibility_timeout is set but every queue is predefined: kombu "
    "creates no queue, so the queue's own VisibilityTimeout rules.",
    "sqs_broker.E007": "An amqp or rpc result backend with SQS: one queue per task, never "
    "collected.",
    "sqs_broker.W005": "worker_soft_shutdown_timeout is 0 with a long visibility timeout: "
    "after a cold shutdown unacknowledged messages wait out the whole timeout.",
    "sqs_broker.W006": "Task events are on: SQS does not carry Celery events (celery "
    "events, Flower show nothing) and each listener leaves a celeryev queue.",
    "sqs_broker.W007": "Remote control is on: SQS does not support it (celery inspect and "
    "control get no answer) and each worker creates a pidbox queue.",
    # --- offline: predefined queues
    "sqs_broker.E008": "A Celery queue's SQS name (prefix + sanitised name) is missing from "
    "predefined_queues: the worker stops with UndefinedQueueException.",
    "sqs_broker.W008": "A predefined queue's key is not the SQS name of any Celery queue the "
    "app declares: kombu never looks it up.",
    "sqs_broker.E009": "A backoff policy kombu can never find: queues are looked up by prefix "
    "+ sanitised name, backoff policies by the raw routing key, so a prefix or a rewritten "
    "character silently disables the policy.",
    "sqs_broker.E010": "A predefined queue's name and URL disagree on .fifo.",
    "sqs_broker.E011": "A predefined queue's URL names a region other than the one its "
    "client signs for.",
    "sqs_broker.E012": "A predefined queue's AWS URL has a malformed account id (12 digits).",
    # --- offline: backoff policies
    "sqs_broker.W009": "Backoff policy keys are not 1..n consecutive: the missing attempts "
    "fall back to the queue's visibility timeout.",
    "sqs_broker.E013": "A backoff delay outside 0-43200 s: ChangeMessageVisibility rejects it.",
    "sqs_broker.E023": "Backoff policy keys that are not integers: kombu looks the policy up "
    "by the integer ApproximateReceiveCount, so string keys never match.",
    "sqs_broker.W010": "A backoff_tasks name is not a task registered in the Celery app.",
    "sqs_broker.W011": "A backoff policy that can never apply to a task: kombu applies it "
    "only when the message is rejected (acks_late and not acks_on_failure_or_timeout).",
    # --- offline: STS
    "sqs_broker.E014": "sts_token_timeout outside 900-43200: AssumeRole rejects it.",
    "sqs_broker.W013": "sts_token_buffer_time >= sts_token_timeout: kombu ignores the buffer.",
    "sqs_broker.W014": "sts_role_arn without predefined queues: kombu uses the role only for "
    "predefined queues.",
    "sqs_broker.W019": "sts_role_arn with keys in the URL or a custom endpoint: kombu calls "
    "AssumeRole with boto3's default session, which ignores both.",
    # --- offline: names and the runtime
    "sqs_broker.W015": "kombu rewrites a queue name ('.' to '-', other punctuation to '_'): "
    "the SQS queue is called something else than the Celery queue.",
    "sqs_broker.E015": "A queue name SQS rejects: over 80 characters or characters other "
    "than letters, digits, '-' and '_'.",
    "sqs_broker.E016": "pycurl is not importable: kombu's asynchronous SQS poller needs it "
    "and the worker fails at start.",
    "sqs_broker.I004": "A FIFO queue: tasks published without a MessageGroupId all share "
    "the group 'default' and run one at a time.",
    # --- online: reaching SQS
    "sqs_broker.E017": "The SQS/STS endpoint cannot be reached, or does not answer as SQS "
    "(nothing else was checked).",
    "sqs_broker.E018": "The credentials are missing or rejected (nothing else was checked).",
    "sqs_broker.E019": "Access denied, naming the action the credentials may not perform.",
    "sqs_broker.E020": "AssumeRole of sts_role_arn fails (other than access denied).",
    "sqs_broker.I005": "Whom the credentials resolve to (STS GetCallerIdentity).",
    "sqs_broker.I009": "The endpoint does not answer STS GetCallerIdentity: identity not "
    "confirmed.",
    # --- online: queues
    "sqs_broker.I006": "A declared queue does not exist yet: kombu creates it on first use.",
    "sqs_broker.E021": "A predefined queue does not exist: kombu never creates those.",
    "sqs_broker.W016": "A queue's VisibilityTimeout differs from the configured one: kombu "
    "sets it only when it creates the queue.",
    "sqs_broker.I007": "A queue's ReceiveMessageWaitTimeSeconds is 0: kombu long-polls "
    "anyway, but every other consumer short-polls.",
    "sqs_broker.I008": "A FIFO queue's ContentBasedDeduplication has no effect on Celery "
    "messages: kombu sends a random MessageDeduplicationId.",
    "sqs_broker.E022": "A RedrivePolicy names a dead-letter queue that does not exist.",
    "sqs_broker.W012": "A backoff policy with more attempts than the dead-letter queue's "
    "maxReceiveCount lets happen.",
    "sqs_broker.W017": "Leftover pidbox or celeryev queues: created for remote control or "
    "events, which SQS does not serve.",
    "sqs_broker.W018": "A queue's attributes could not be read.",
}

#: Findings that mean "could not check": ``sqs_check`` exits 2 on them.
UNCHECKABLE = frozenset({"sqs_broker.E017", "sqs_broker.E018"})

#: SQS limits (ReceiveMessage, SetQueueAttributes, AssumeRole, CreateQueue).
MAX_WAIT_TIME_SECONDS = 20
MAX_VISIBILITY_TIMEOUT = 43200
MIN_STS_TOKEN_TIMEOUT = 900
MAX_STS_TOKEN_TIMEOUT = 43200
MAX_QUEUE_NAME = 80

#: A visibility timeout above this makes a cold shutdown's stranded messages wait long.
LONG_VISIBILITY_TIMEOUT = 300

#: Dollars per million SQS requests (standard queues, after the free tier).
PRICE_PER_MILLION = 0.40
SECONDS_PER_MONTH = 30 * 86400
#: A receive's round trip, counted in short polling's rate (polling_interval 0 is not free).
ROUND_TRIP = 0.05

_SQS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_AWS_HOST = re.compile(
    r"^(?:sqs\.(?P<r1>[a-z0-9-]+)|(?P<r2>[a-z0-9-]+)\.queue|queue)\.amazonaws\.com(?:\.cn)?$"
)
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


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
    return LEVELS.index(level)  # type: ignore[arg-type]


def _level_of(finding_id: str) -> Level:
    letter = finding_id.rsplit(".", 1)[1][0]
    return {"E": "error", "W": "warning", "I": "info"}[letter]  # type: ignore[return-value]


def make(finding_id: str, message: str, hint: str, queue: str | None = None) -> Finding:
    """A finding whose level follows from the letter of its id."""
    if finding_id not in CATALOGUE:
        raise KeyError(f"{finding_id} is not in findings.CATALOGUE")
    return Finding(finding_id, _level_of(finding_id), message, hint, queue)


def could_not_check(found: Iterable[Finding]) -> list[Finding]:
    """The findings that mean SQS could not be checked at all (endpoint, credentials)."""
    return [f for f in found if f.id in UNCHECKABLE and f.queue is None]


def _celery_app(app: Celery | None) -> Celery:
    """``app``, else ``SQS_BROKER_CELERY_APP``, else the current Celery app (as the dashboard)."""
    if app is not None:
        return app
    configured = app_settings.CELERY_APP
    return configured if configured is not None else sqs.celery_app()


def _options(app: Celery) -> dict[str, Any]:
    return dict(app.conf.broker_transport_options or {})


def _is_sqs(app: Celery) -> bool:
    url = app.conf.broker_url or ""
    return url.split("://", 1)[0].lower() == "sqs" if "://" in url else False


def _seconds(value: float) -> str:
    return f"{value:g}"


def _dollars(requests: float) -> str:
    return f"{requests * PRICE_PER_MILLION / 1_000_000:,.2f}"


# --- offline: the broker URL --------------------------------------------------


def debug_with_url_credentials(debug: bool, broker_url: str | None) -> Finding | None:
    """E001: DEBUG together with credentials in the broker URL."""
    if not debug or not broker_url or not url_has_credentials(broker_url):
        return None
    return make(
        "sqs_broker.E001",
        _(
            "DEBUG is on and the broker URL carries AWS credentials: Django's debug page "
            "and error reports could expose them."
        ),
        _(
            "Turn DEBUG off, or take the keys out of the URL: leave SQS_CREDENTIALS_IN_URL "
            "false so boto3 reads them from the environment, or use an IAM role."
        ),
    )


def unsafe_debug(app: Celery | None = None) -> Finding | None:
    """E001 for this process: Django's DEBUG with the broker URL the worker really uses."""
    return debug_with_url_credentials(bool(settings.DEBUG), _celery_app(app).conf.broker_url)


def not_sqs(app: Celery) -> Finding | None:
    """W001: the broker is something else than SQS."""
    if _is_sqs(app):
        return None
    url = app.conf.broker_url or ""
    scheme = url.split("://", 1)[0] if "://" in url else url or "(none)"
    return make(
        "sqs_broker.W001",
        _("The broker is %(scheme)s://, not sqs://: the SQS checks were skipped.")
        % {"scheme": scheme.split(";", 1)[0]},
        _(
            "Leave CELERY_BROKER_URL unset so sqs_broker.settings builds an sqs:// URL, "
            "or remove sqs_broker if this project does not use SQS."
        ),
    )


def url_credentials(app: Celery) -> Finding | None:
    """E002: the URL's credentials do not parse back to the same key and secret."""
    url = app.conf.broker_url or ""
    rest = url.split("://", 1)[1] if "://" in url else ""
    if "@" not in rest:
        return None
    creds = rest.rpartition("@")[0]
    broken = sorted({c for c in creds if c in "/?#"})
    if broken:
        # urlsplit ends the host part at the first of these, so kombu reads a
        # truncated secret and takes part of it for the host.
        return make(
            "sqs_broker.E002",
            _(
                "The broker URL's credentials contain an unescaped %(chars)s: kombu reads a "
                "truncated secret and a wrong host, and every call is refused."
            )
            % {"chars": " ".join(repr(c) for c in broken)},
            _(
                "Build the URL with kombu.utils.url.safequote on the key and the secret "
                "(SQS_CREDENTIALS_IN_URL=true does it), or keep the keys out of the URL."
            ),
        )
    user, sep, password = creds.partition(":")
    if "%" in unquote(password) or "%" in unquote(user):
        # AWS keys and secrets never contain '%': one left after kombu's
        # unquote means the URL was quoted twice.
        return make(
            "sqs_broker.E002",
            _(
                "The broker URL's credentials still contain a percent sign after kombu unquotes "
                "them: "
                "they were quoted twice, so kombu signs with a wrong secret."
            ),
            _(
                "Apply kombu.utils.url.safequote once to the raw key and secret "
                "(SQS_CREDENTIALS_IN_URL=true does it)."
            ),
        )
    if not user or not sep or not password:
        return make(
            "sqs_broker.E002",
            _("The broker URL has an access key without a secret, or a secret without a key."),
            _(
                "Write both as sqs://KEY:SECRET@ (each safequoted), or neither so boto3 "
                "finds credentials in the environment or an IAM role."
            ),
        )
    return None


def encoded_predefined_credentials(options: Mapping[str, Any]) -> list[Finding]:
    """E003: predefined-queue keys that look URL-encoded."""
    found = []
    for name, spec in (options.get("predefined_queues") or {}).items():
        if not isinstance(spec, Mapping):
            continue
        fields = [
            key
            for key in ("access_key_id", "secret_access_key")
            if isinstance(spec.get(key), str) and _ENCODED.search(spec[key])
        ]
        if fields:
            found.append(
                make(
                    "sqs_broker.E003",
                    _(
                        "The %(fields)s of this predefined queue look URL-encoded (%%XX): "
                        "boto3 signs with them as written and SQS answers 'The request "
                        "signature we calculated does not match the signature you provided'."
                    )
                    % {"fields": " and ".join(fields)},
                    _(
                        "Give predefined queues the raw key and secret; safequote belongs "
                        "only to credentials inside the broker URL."
                    ),
                    queue=name,
                )
            )
    return found


# --- offline: polling ---------------------------------------------------------


def polling(options: Mapping[str, Any]) -> list[Finding]:
    """E004, I001, W002, W003, I002: long polling, short polling and the interval."""
    wait = options.get("wait_time_seconds", 10)
    interval = options.get("polling_interval", 1)
    if (
        isinstance(wait, bool)
        or not isinstance(wait, int)
        or not 0 <= wait <= MAX_WAIT_TIME_SECONDS
    ):
        return [
            make(
                "sqs_broker.E004",
                _(
                    "wait_time_seconds is %(value)r: SQS accepts an integer from 0 to 20, "
                    "so every ReceiveMessage would be rejected."
                )
                % {"value": wait},
                _("Set SQS_WAIT_TIME_SECONDS to an integer from 0 to 20 (10 is a good default)."),
            )
        ]
    try:
        interval = float(interval or 0)
    except (TypeError, ValueError):
        interval = 0.0
    queues = _("per queue and consuming worker")
    if wait > 0 and interval > 0:
        cycle = wait + interval
        if interval > wait:
            return [
                make(
                    "sqs_broker.W002",
                    _(
                        "polling_interval (%(interval)s s) is longer than wait_time_seconds "
                        "(%(wait)s s): after each empty poll the worker sleeps %(interval)s s "
                        "listening to nothing, so a new message can wait that long."
                    )
                    % {"interval": _seconds(interval), "wait": wait},
                    _(
                        "Let long polling do the waiting: SQS_POLLING_INTERVAL=0 (or a small "
                        "value) with SQS_WAIT_TIME_SECONDS up to 20."
                    ),
                )
            ]
        requests = SECONDS_PER_MONTH / cycle
        return [
            make(
                "sqs_broker.I001",
                _(
                    "An empty poll cycle lasts wait_time_seconds + polling_interval = "
                    "%(wait)s + %(interval)s = %(cycle)s s: about %(requests)s requests a "
                    "month (%(cost)s USD) %(queues)s when idle."
                )
                % {
                    "wait": wait,
                    "interval": _seconds(interval),
                    "cycle": _seconds(cycle),
                    "requests": f"{requests:,.0f}",
                    "cost": _dollars(requests),
                    "queues": queues,
                },
                _(
                    "Nothing to fix. SQS_POLLING_INTERVAL=0 removes the extra %(interval)s s; "
                    "a longer SQS_WAIT_TIME_SECONDS makes idle polls cheaper."
                )
                % {"interval": _seconds(interval)},
            )
        ]
    if wait == 0:
        cycle = interval + ROUND_TRIP
        requests = SECONDS_PER_MONTH / cycle
        numbers = {
            "interval": _seconds(interval),
            "requests": f"{requests:,.0f}",
            "cost": _dollars(requests),
            "queues": queues,
        }
        if interval < 1:
            return [
                make(
                    "sqs_broker.W003",
                    _(
                        "Short polling (wait_time_seconds 0) with polling_interval "
                        "%(interval)s s is a busy loop: about %(requests)s requests a month "
                        "(%(cost)s USD) %(queues)s, and CPU spent on empty answers."
                    )
                    % numbers,
                    _(
                        "Use long polling: SQS_WAIT_TIME_SECONDS=10 to 20 with "
                        "SQS_POLLING_INTERVAL=0. For sub-second latency use Redis or RabbitMQ."
                    ),
                )
            ]
        return [
            make(
                "sqs_broker.I002",
                _(
                    "Short polling (wait_time_seconds 0) every %(interval)s s: about "
                    "%(requests)s requests a month (%(cost)s USD) %(queues)s; short polls "
                    "sample only some SQS servers and can miss messages."
                )
                % numbers,
                _("Long polling is cheaper and sees every server: SQS_WAIT_TIME_SECONDS=10 to 20."),
            )
        ]
    return []


# --- offline: visibility timeout, results, shutdown, events ------------------


def _visibility_timeout(options: Mapping[str, Any]) -> float | None:
    value = options.get("visibility_timeout", 1800)
    if value is None or value == "":
        return 1800
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_discovered: weakref.WeakSet[Celery] = weakref.WeakSet()


def registered_tasks(app: Celery) -> dict[str, Any]:
    """The app's tasks, after the task modules of its Django apps are imported.

    ``autodiscover_tasks(force=True)`` imports them directly; the worker's way
    (``import_default_modules``) would run the system checks again from here.
    Once per app: the dashboard asks on every page load.
    """
    if app not in _discovered:
        if any(hasattr(fixup, "autodiscover_tasks") for fixup in getattr(app, "_fixups", ())):
            app.autodiscover_tasks(force=True)
        _discovered.add(app)
    return dict(app.tasks)


def _longest_time_limit(app: Celery) -> tuple[float, str] | None:
    conf = app.conf
    limits: list[tuple[float, str]] = []
    for setting in ("task_time_limit", "task_soft_time_limit"):
        value = conf.get(setting)
        if value:
            limits.append((float(value), setting))
    configured = {value for value, _setting in limits}
    for name, task in registered_tasks(app).items():
        for attribute in ("time_limit", "soft_time_limit"):
            value = getattr(task, attribute, None)
            # A task's own limit; the settings' values, which tasks inherit, are named already.
            if value and float(value) not in configured:
                limits.append((float(value), f"{name}.{attribute}"))
    return max(limits, key=lambda limit: limit[0]) if limits else None


def timeout_too_short(app: Celery, timeout: float, queue: str | None = None) -> list[Finding]:
    """E006, W004: a visibility timeout shorter than the longest ETA or time limit."""
    from sqs_broker.publishing import held_by_worker

    found = []
    longest_eta = app_settings.MAX_ETA
    fifo = bool(queue and queue.endswith(".fifo"))
    # Only the part of a delay that SQS cannot hold itself keeps a message
    # invisible in a worker's hands.
    held = held_by_worker(longest_eta, fifo)
    if longest_eta and timeout < held:
        values = {
            "timeout": _seconds(timeout),
            "eta": _seconds(longest_eta),
            "held": _seconds(held),
            "limit": _seconds(timeout + (longest_eta - held)),
        }
        found.append(
            make(
                "sqs_broker.E006",
                _(
                    "The visibility timeout (%(timeout)s s) is shorter than the %(held)s s "
                    "a worker holds a task with the longest ETA/countdown the project uses "
                    "(SQS_BROKER_MAX_ETA = %(eta)s s, less what SQS's own delay covers): SQS "
                    "redelivers such a task while the worker holds it, and it runs again, "
                    "in a loop."
                )
                % values,
                _(
                    "Raise the visibility timeout to at least %(held)s s (at most 43200), or "
                    "keep ETAs and countdowns shorter than %(limit)s s."
                )
                % values,
                queue=queue,
            )
        )
    limit = _longest_time_limit(app)
    if limit is not None and timeout < limit[0]:
        found.append(
            make(
                "sqs_broker.W004",
                _(
                    "The visibility timeout (%(timeout)s s) is shorter than %(setting)s "
                    "(%(limit)s s): a task running that long (with acks_late), or the "
                    "prefetched messages waiting behind it, is redelivered and runs twice."
                )
                % {"timeout": _seconds(timeout), "setting": limit[1], "limit": _seconds(limit[0])},
                _("Raise the visibility timeout above %(limit)s s, or lower the time limit.")
                % {"limit": _seconds(limit[0])},
                queue=queue,
            )
        )
    return found


def visibility(app: Celery, options: Mapping[str, Any]) -> list[Finding]:
    """E005, E006, W004, I003, W005: the configured visibility timeout."""
    timeout = _visibility_timeout(options)
    if timeout is None or not 0 <= timeout <= MAX_VISIBILITY_TIMEOUT:
        return [
            make(
                "sqs_broker.E005",
                _("visibility_timeout is %(value)r: SQS accepts 0 to 43200 seconds.")
                % {"value": options.get("visibility_timeout")},
                _("Set SQS_VISIBILITY_TIMEOUT to whole seconds from 0 to 43200."),
            )
        ]
    found: list[Finding] = []
    predefined = options.get("predefined_queues") or {}
    if predefined:
        if "visibility_timeout" in options:
            found.append(
                make(
                    "sqs_broker.I003",
                    _(
                        "visibility_timeout (%(timeout)s s) has no effect: every queue is "
                        "predefined, kombu creates none, and each queue's own "
                        "VisibilityTimeout attribute rules (the online checks compare them)."
                    )
                    % {"timeout": _seconds(timeout)},
                    _("Set VisibilityTimeout on the queues themselves, in AWS."),
                )
            )
    else:
        found += timeout_too_short(app, timeout)
    soft = float(app.conf.get("worker_soft_shutdown_timeout") or 0)
    if soft <= 0 and timeout > LONG_VISIBILITY_TIMEOUT:
        found.append(
            make(
                "sqs_broker.W005",
                _(
                    "worker_soft_shutdown_timeout is 0 and the visibility timeout is "
                    "%(timeout)s s: after a cold shutdown (or a kill) the messages a worker "
                    "held stay invisible for up to %(timeout)s s before another worker can "
                    "take them."
                )
                % {"timeout": _seconds(timeout)},
                _(
                    "Set CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT (e.g. 30) so running tasks get "
                    "time to finish and unacknowledged messages are requeued at shutdown."
                ),
            )
        )
    return found


def result_backend(app: Celery) -> Finding | None:
    """E007: amqp:// or rpc:// results with SQS."""
    backend = app.conf.result_backend
    if not isinstance(backend, str):
        return None
    scheme = backend.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("amqp", "rpc"):
        return None
    return make(
        "sqs_broker.E007",
        _(
            "The result backend is %(scheme)s://: on SQS it creates a queue per task that "
            "is never collected, and each one costs money."
        )
        % {"scheme": scheme},
        _("Use django-db (django-celery-results), dynamodb:// or s3:// for results."),
    )


def events_and_control(app: Celery) -> list[Finding]:
    """W006, W007: events and remote control, which SQS does not carry."""
    conf = app.conf
    found = []
    events = [s for s in ("worker_send_task_events", "task_send_sent_event") if conf.get(s)]
    if events:
        found.append(
            make(
                "sqs_broker.W006",
                _(
                    "%(settings)s on: SQS does not carry Celery events, so celery events and "
                    "Flower show nothing, and each listener leaves a celeryev queue behind."
                )
                % {"settings": ", ".join(events)},
                _(
                    "Turn them off (CELERY_WORKER_SEND_TASK_EVENTS=False, "
                    "CELERY_TASK_SEND_SENT_EVENT=False); the sqs_broker dashboard and its "
                    "worker telemetry replace them."
                ),
            )
        )
    if conf.get("worker_enable_remote_control"):
        found.append(
            make(
                "sqs_broker.W007",
                _(
                    "worker_enable_remote_control is on: SQS does not support remote "
                    "control, so celery inspect and celery control get no answer, and each "
                    "worker creates a pidbox queue."
                ),
                _(
                    "Set CELERY_WORKER_ENABLE_REMOTE_CONTROL=False; the sqs_broker dashboard "
                    "shows queues and worker heartbeats instead."
                ),
            )
        )
    return found


# --- offline: predefined queues ----------------------------------------------


def _aws_url_parts(url: str) -> tuple[str | None, str] | None:
    """``(region, account)`` of an amazonaws.com queue URL; ``None`` for other hosts."""
    parts = urlsplit(url)
    match = _AWS_HOST.match(parts.hostname or "")
    if not match:
        return None
    region = match["r1"] or match["r2"] or "us-east-1"
    segments = [s for s in parts.path.split("/") if s]
    return region, segments[0] if segments else ""


def predefined(app: Celery, options: Mapping[str, Any]) -> list[Finding]:
    """E008, W008, E009, E010, E011, E012: predefined queues against the app's queues."""
    queues = options.get("predefined_queues") or {}
    if not queues:
        return []
    found: list[Finding] = []
    declared = {q: sqs.canonical_name(q, app) for q in sqs.declared_queues(app)}
    for celery_name, name in declared.items():
        if name not in queues:
            found.append(
                make(
                    "sqs_broker.E008",
                    _(
                        "Celery queue %(celery)r is SQS queue %(name)r (queue_name_prefix + "
                        "sanitised name), which predefined_queues lacks: the worker stops "
                        "with UndefinedQueueException."
                    )
                    % {"celery": celery_name, "name": name},
                    _("Add %(name)r to SQS_PREDEFINED_QUEUES, or stop routing tasks to %(celery)r.")
                    % {"name": name, "celery": celery_name},
                    queue=name,
                )
            )
    canonical = set(declared.values())
    region = sqs.region(app)
    for name, spec in queues.items():
        if not isinstance(spec, Mapping):
            continue
        if name not in canonical:
            found.append(
                make(
                    "sqs_broker.W008",
                    _(
                        "Predefined queue %(name)r is not the SQS name of any Celery queue "
                        "the app declares (%(declared)s): kombu looks queues up by "
                        "queue_name_prefix + sanitised Celery name, never by this key."
                    )
                    % {"name": name, "declared": ", ".join(sorted(canonical)) or "-"},
                    _(
                        "Key the queue by the SQS name of its Celery queue, or declare a "
                        "Celery queue (task_queues or task_routes) that maps to it."
                    ),
                    queue=name,
                )
            )
        if spec.get("backoff_policy") and sqs.canonical_name(name, app) != name:
            found.append(
                make(
                    "sqs_broker.E009",
                    _(
                        "The backoff policy of %(name)r never applies: kombu finds the queue "
                        "under its SQS name (prefix + sanitised name) but looks the policy "
                        "up under the raw routing key, and a Celery queue called %(name)r "
                        "would be SQS queue %(real)r. Failing tasks are not retried on the "
                        "policy's schedule."
                    )
                    % {"name": name, "real": sqs.canonical_name(name, app)},
                    _(
                        "Drop queue_name_prefix and use a queue name made of letters, digits, "
                        "'-' and '_' only, so the routing key and the SQS name are the same."
                    ),
                    queue=name,
                )
            )
        url = spec.get("url")
        if not isinstance(url, str):
            continue
        if url.rstrip("/").endswith(".fifo") != name.endswith(".fifo"):
            found.append(
                make(
                    "sqs_broker.E010",
                    _(
                        "Predefined queue %(name)r and its URL disagree on FIFO: kombu "
                        "refuses to start (InvalidQueueException)."
                    )
                    % {"name": name},
                    _(
                        "A FIFO queue's key and URL both end with .fifo, a standard "
                        "queue's neither."
                    ),
                    queue=name,
                )
            )
        aws = _aws_url_parts(url)
        if aws is None:
            continue
        url_region, account = aws
        signing = spec.get("region") or region
        if url_region != signing:
            found.append(
                make(
                    "sqs_broker.E011",
                    _(
                        "Predefined queue %(name)r is in %(url_region)s (its URL), but its "
                        "client is made for %(region)s: calls go to the wrong region."
                    )
                    % {"name": name, "url_region": url_region, "region": signing},
                    _("Set the queue's 'region' (or SQS_REGION) to %(url_region)s.")
                    % {"url_region": url_region},
                    queue=name,
                )
            )
        if not re.fullmatch(r"\d{12}", account):
            found.append(
                make(
                    "sqs_broker.E012",
                    _(
                        "Predefined queue %(name)r has account id %(account)r in its URL: AWS "
                        "account ids have 12 digits, so the queue cannot be found."
                    )
                    % {"name": name, "account": account},
                    _(
                        "Copy the queue URL from the SQS console or `aws sqs get-queue-url` "
                        "(https://sqs.REGION.amazonaws.com/123456789012/NAME)."
                    ),
                    queue=name,
                )
            )
    return found


# --- offline: backoff policies -----------------------------------------------


def _rejects_on_failure(task: Any) -> tuple[bool, str]:
    """Whether a failure of ``task`` rejects its message (so kombu applies backoff)."""
    if not getattr(task, "acks_late", False):
        return False, _("acks_late is off")
    acks_on_failure = getattr(task, "acks_on_failure", None)
    if acks_on_failure is None:
        acks_on_failure = getattr(task, "acks_on_failure_or_timeout", True)
    if acks_on_failure:
        return False, _("acks_on_failure_or_timeout is on")
    return True, ""


def backoff(app: Celery, options: Mapping[str, Any]) -> list[Finding]:
    """W009, E013, W010, W011: each predefined queue's backoff policy and tasks."""
    found: list[Finding] = []
    tasks: dict[str, Any] | None = None
    for name, spec in (options.get("predefined_queues") or {}).items():
        if not isinstance(spec, Mapping) or not spec.get("backoff_policy"):
            continue
        policy = spec["backoff_policy"]
        not_int = [k for k in policy if isinstance(k, bool) or not isinstance(k, int)]
        if not_int:
            found.append(
                make(
                    "sqs_broker.E023",
                    _(
                        "The backoff policy of %(name)r has keys that are not integers "
                        "(%(keys)s): kombu looks the policy up by the integer receive count, so "
                        "it never applies."
                    )
                    % {"name": name, "keys": ", ".join(repr(k) for k in not_int)},
                    _(
                        "Write the keys as integers ({1: 10, 2: 20}); SQS_PREDEFINED_QUEUES "
                        "converts its JSON keys for you."
                    ),
                    queue=name,
                )
            )
        keys = sorted(int(k) for k in policy if str(k).strip().lstrip("-").isdigit())
        if keys != list(range(1, len(policy) + 1)):
            found.append(
                make(
                    "sqs_broker.W009",
                    _(
                        "The backoff policy of %(name)r has keys %(keys)s, not 1..%(n)s: "
                        "receive counts without a key get the queue's own visibility timeout."
                    )
                    % {"name": name, "keys": sorted(map(str, policy)), "n": len(policy)},
                    _("Number the attempts 1, 2, 3... with no gap."),
                    queue=name,
                )
            )
        wrong = [
            k
            for k, v in policy.items()
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_VISIBILITY_TIMEOUT
        ]
        if wrong:
            found.append(
                make(
                    "sqs_broker.E013",
                    _(
                        "The backoff policy of %(name)r has delays outside 0-43200 s at "
                        "%(keys)s: ChangeMessageVisibility rejects them and the retry is not "
                        "delayed."
                    )
                    % {"name": name, "keys": sorted(map(str, wrong))},
                    _("Use whole seconds from 0 to 43200 (12 hours)."),
                    queue=name,
                )
            )
        if tasks is None:
            tasks = registered_tasks(app)
        for task_name in spec.get("backoff_tasks") or ():
            task = tasks.get(task_name)
            if task is None:
                found.append(
                    make(
                        "sqs_broker.W010",
                        _(
                            "backoff_tasks of %(name)r lists %(task)r, which is not a task "
                            "registered in the Celery app: the policy never applies to it."
                        )
                        % {"name": name, "task": task_name},
                        _("Use the task's full registered name, e.g. 'project.demo.tasks.flaky'."),
                        queue=name,
                    )
                )
                continue
            rejects, reason = _rejects_on_failure(task)
            if not rejects:
                found.append(
                    make(
                        "sqs_broker.W011",
                        _(
                            "The backoff policy of %(name)r can never apply to %(task)r: "
                            "%(reason)s, so a failure acknowledges the message, and kombu "
                            "applies the policy only to rejected messages."
                        )
                        % {"name": name, "task": task_name, "reason": reason},
                        _(
                            "Declare the task with acks_late=True and "
                            "acks_on_failure_or_timeout=False."
                        ),
                        queue=name,
                    )
                )
    return found


# --- offline: STS, names, runtime --------------------------------------------


def sts(app: Celery, options: Mapping[str, Any]) -> list[Finding]:
    """E014, W013, W014, W019: the STS role options."""
    role = options.get("sts_role_arn")
    if not role:
        return []
    found = []
    ignored = []
    if url_has_credentials(app.conf.broker_url or ""):
        ignored.append(_("the keys in the broker URL"))
    if sqs.endpoint_url(app):
        ignored.append(_("the endpoint %(endpoint)s") % {"endpoint": sqs.endpoint_url(app)})
    if ignored:
        found.append(
            make(
                "sqs_broker.W019",
                _(
                    "kombu assumes %(role)s with boto3's default session (environment, "
                    "profile, instance role) at AWS's own STS endpoint: it ignores %(ignored)s."
                )
                % {"role": role, "ignored": _(" and ").join(ignored)},
                _(
                    "Give the workers credentials boto3 finds by itself (AWS_ACCESS_KEY_ID in "
                    "the environment, or an IAM role) that may call sts:AssumeRole on AWS."
                ),
            )
        )
    timeout = options.get("sts_token_timeout", MIN_STS_TOKEN_TIMEOUT)
    buffer = options.get("sts_token_buffer_time", 0) or 0
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int)
        or not MIN_STS_TOKEN_TIMEOUT <= timeout <= MAX_STS_TOKEN_TIMEOUT
    ):
        found.append(
            make(
                "sqs_broker.E014",
                _(
                    "sts_token_timeout is %(value)r: AssumeRole accepts 900 to 43200 seconds "
                    "(and no more than the role's maximum session duration)."
                )
                % {"value": timeout},
                _("Set SQS_STS_TOKEN_TIMEOUT to an integer from 900 to 43200."),
            )
        )
    elif isinstance(buffer, int | float) and buffer >= timeout:
        found.append(
            make(
                "sqs_broker.W013",
                _(
                    "sts_token_buffer_time (%(buffer)s s) is not less than sts_token_timeout "
                    "(%(timeout)s s): kombu ignores the buffer and renews only at expiry."
                )
                % {"buffer": _seconds(buffer), "timeout": timeout},
                _("Make SQS_STS_TOKEN_BUFFER_TIME smaller than SQS_STS_TOKEN_TIMEOUT."),
            )
        )
    if not options.get("predefined_queues"):
        found.append(
            make(
                "sqs_broker.W014",
                _(
                    "sts_role_arn is set but no queue is predefined: kombu assumes the role "
                    "only for predefined queues, so every call uses the main credentials."
                ),
                _(
                    "Predefine the queues (SQS_PREDEFINED_QUEUES) or drop SQS_STS_ROLE_ARN "
                    "and give the main credentials the access."
                ),
            )
        )
    return found


def names(app: Celery, options: Mapping[str, Any]) -> list[Finding]:
    """W015, E015, I004: what each Celery queue is really called in SQS."""
    prefix = options.get("queue_name_prefix", "") or ""
    found: list[Finding] = []
    for celery_name in sqs.declared_queues(app):
        raw = prefix + celery_name
        name = sqs.canonical_name(celery_name, app)
        stem = name.removesuffix(".fifo")
        if len(name) > MAX_QUEUE_NAME or not _SQS_NAME.match(stem):
            found.append(
                make(
                    "sqs_broker.E015",
                    _(
                        "Celery queue %(celery)r becomes SQS queue %(name)r (%(length)s "
                        "characters), which SQS rejects: at most 80 characters, letters, "
                        "digits, '-' and '_' only (plus .fifo)."
                    )
                    % {"celery": celery_name, "name": name, "length": len(name)},
                    _("Shorten or rename the queue or SQS_QUEUE_NAME_PREFIX."),
                    queue=name,
                )
            )
        elif name != raw:
            found.append(
                make(
                    "sqs_broker.W015",
                    _(
                        "Celery queue %(raw)r (queue_name_prefix + name) is really called "
                        "%(name)r in SQS: kombu rewrites '.' to '-' and other punctuation to "
                        "'_'. IAM policies, alarms and predefined_queues must use %(name)r."
                    )
                    % {"raw": raw, "name": name},
                    _("Use only letters, digits, '-' and '_' in queue names and the prefix."),
                    queue=name,
                )
            )
        if name.endswith(".fifo"):
            found.append(
                make(
                    "sqs_broker.I004",
                    _(
                        "FIFO queue: tasks published without a MessageGroupId all share the "
                        "group 'default', so they run one at a time, in order, on one worker."
                    ),
                    _(
                        "Pass MessageGroupId (and MessageDeduplicationId) to apply_async for "
                        "tasks that may run in parallel."
                    ),
                    queue=name,
                )
            )
    return found


def pycurl_missing() -> Finding | None:
    """E016: kombu's asynchronous SQS client needs pycurl."""
    try:
        import pycurl  # noqa: F401
    except ImportError as exc:
        return make(
            "sqs_broker.E016",
            _(
                "pycurl cannot be imported (%(error)s): kombu's asynchronous SQS poller needs "
                "it, so celery worker fails at start."
            )
            % {"error": exc},
            _(
                "pip install pycurl (it compiles: apt-get install libcurl4-openssl-dev "
                "libssl-dev), or reinstall celery[sqs]."
            ),
        )
    return None


def offline(app: Celery | None = None) -> list[Finding]:
    """Every pitfall that can be found without calling AWS."""
    app = _celery_app(app)
    found: list[Finding | None] = [unsafe_debug(app), result_backend(app)]
    if not _is_sqs(app):
        found.append(not_sqs(app))
        return [f for f in found if f is not None]
    options = _options(app)
    found.append(url_credentials(app))
    found += encoded_predefined_credentials(options)
    found += polling(options)
    found += visibility(app, options)
    found += events_and_control(app)
    found += predefined(app, options)
    found += backoff(app, options)
    found += sts(app, options)
    found += names(app, options)
    found.append(pycurl_missing())
    return [f for f in found if f is not None]


# --- online ------------------------------------------------------------------


def _call_failed(exc: BaseException, action: str, queue: str | None = None) -> Finding:
    """A finding for a failed call, by what the failure means."""
    text, _code = sqs.error_text(exc)
    kind = sqs.failure_kind(exc)
    return _failure(kind, sqs.readable_error(text)[0], action, queue)


#: What a failed call means, by :func:`sqs.failure_kind`: id, message, hint.
#: Marked here, translated when a finding is made.
_FAILURES = {
    "unreachable": (
        "sqs_broker.E017",
        gettext_noop("%(action)s could not reach the endpoint: %(error)s"),
        gettext_noop(
            "Check SQS_ENDPOINT_URL / SQS_REGION, the network and any proxy; "
            "SQS_BROKER_CONNECT_TIMEOUT and SQS_BROKER_READ_TIMEOUT bound the wait."
        ),
    ),
    "credentials": (
        "sqs_broker.E018",
        gettext_noop("%(action)s: the credentials are missing or rejected: %(error)s"),
        gettext_noop(
            "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the queue's own keys, "
            "the profile or the IAM role) and that they are not expired."
        ),
    ),
    "denied": (
        "sqs_broker.E019",
        gettext_noop("Access denied: the credentials may not perform %(action)s (%(error)s)."),
        gettext_noop("Allow %(action)s in the IAM policy of these credentials."),
    ),
}
_OTHER_FAILURE = (
    "sqs_broker.W018",
    gettext_noop("%(action)s failed: %(error)s"),
    gettext_noop("See the error; the other findings for this queue could not be checked."),
)


def _failure(kind: str, text: str, action: str, queue: str | None) -> Finding:
    finding_id, message, hint = _FAILURES.get(kind, _OTHER_FAILURE)
    values = {"action": action, "error": text}
    # Only the hints that name the action have a placeholder to fill.
    return make(finding_id, _(message) % values, _(hint) % values, queue=queue)


def identity(app: Celery) -> list[Finding]:
    """I005, I009, E017, E018, E019: whom the main credentials resolve to."""
    try:
        who = sqs.caller_identity(app)
    except Exception as exc:  # every failure becomes a finding, never a traceback
        kind = sqs.failure_kind(exc)
        options = _options(app)
        queues = options.get("predefined_queues") or {}
        if (
            kind == "credentials"
            and queues
            and not options.get("sts_role_arn")
            and all(isinstance(q, Mapping) and q.get("access_key_id") for q in queues.values())
        ):
            # Every queue carries its own keys: the main credentials are not needed.
            return []
        if kind == "other" and sqs.endpoint_url(app):
            text, _code = sqs.error_text(exc)
            return [
                make(
                    "sqs_broker.I009",
                    _("The endpoint does not answer sts:GetCallerIdentity (%(error)s).")
                    % {"error": text},
                    _("Local SQS servers often lack STS; the queue checks still ran."),
                )
            ]
        return [_call_failed(exc, "sts:GetCallerIdentity")]
    return [
        make(
            "sqs_broker.I005",
            _("The credentials resolve to %(arn)s (account %(account)s).") % who,
            _("Make sure this is the identity the workers should use."),
        )
    ]


def assume(app: Celery) -> list[Finding]:
    """E019, E020: the STS role, when configured, can be assumed."""
    role = _options(app).get("sts_role_arn")
    if not role:
        return []
    try:
        sqs.assume_role(app)
    except Exception as exc:
        kind = sqs.failure_kind(exc)
        if kind in ("unreachable", "credentials", "denied"):
            return [_call_failed(exc, f"sts:AssumeRole on {role}")]
        text, _code = sqs.error_text(exc)
        return [
            make(
                "sqs_broker.E020",
                _("AssumeRole of %(role)s fails: %(error)s") % {"role": role, "error": text},
                _(
                    "Check the role ARN, its trust policy, and that sts_token_timeout does "
                    "not exceed the role's maximum session duration (1 hour by default)."
                ),
            )
        ]
    return []


def queue_findings(
    app: Celery, state: sqs.QueueState, existing: Collection[tuple[str, str]] = ()
) -> list[Finding]:
    """I006, E021, W016, E006, W004, I007, I008, E022, W012 and call failures, per queue.

    ``existing`` holds the (account, name) of queues known to exist, whose
    existence as a dead-letter queue need not be asked again.
    """
    ref = state.ref
    options = _options(app)
    if state.error is not None:
        kind = sqs.failure_kind(state.error_code, state.error)
        if kind == "missing":
            if ref.source == "predefined":
                return [
                    make(
                        "sqs_broker.E021",
                        _("Predefined queue %(name)r does not exist: kombu never creates it.")
                        % {"name": ref.name},
                        _(
                            "Create it in AWS (with its VisibilityTimeout and RedrivePolicy), "
                            "or fix its URL in SQS_PREDEFINED_QUEUES."
                        ),
                        queue=ref.name,
                    )
                ]
            return [
                make(
                    "sqs_broker.I006",
                    _(
                        "Queue %(name)r does not exist yet: kombu creates it on first use "
                        "with VisibilityTimeout %(timeout)s and ReceiveMessageWaitTimeSeconds "
                        "%(wait)s."
                    )
                    % {
                        "name": ref.name,
                        "timeout": options.get("visibility_timeout", 1800),
                        "wait": (options.get("sqs-creation-attributes") or {}).get(
                            "ReceiveMessageWaitTimeSeconds", 0
                        ),
                    },
                    _(
                        "Nothing to do, unless the credentials may not sqs:CreateQueue: then "
                        "create it beforehand."
                    ),
                    queue=ref.name,
                )
            ]
        operation = state.error_operation or "GetQueueAttributes"
        service = "sts" if operation in ("AssumeRole", "GetCallerIdentity") else "sqs"
        action = f"{service}:{operation}"
        return [_failure(kind, sqs.readable_error(state.error)[0], action, ref.name)]

    found: list[Finding] = []
    redrive = sqs.redrive_policy(state)
    if ref.source == "prefix":
        # Found by listing, not used by a declared queue: only its dead-letter queue matters.
        return _dead_letter(app, state, redrive, options, existing) if redrive else []
    actual = state.int("VisibilityTimeout")
    configured = _visibility_timeout(options)
    if actual is not None:
        if ref.source != "predefined" and configured is not None and actual != configured:
            found.append(
                make(
                    "sqs_broker.W016",
                    _(
                        "VisibilityTimeout is %(actual)s s but visibility_timeout is "
                        "%(configured)s s: kombu sets it only when it creates a queue, so "
                        "%(actual)s s rules."
                    )
                    % {"actual": actual, "configured": _seconds(configured)},
                    _(
                        "aws sqs set-queue-attributes --queue-url %(url)s --attributes "
                        "VisibilityTimeout=%(configured)s"
                    )
                    % {"url": state.url, "configured": _seconds(configured)},
                    queue=ref.name,
                )
            )
        if ref.source == "predefined" or actual != configured:
            found += timeout_too_short(app, actual, queue=ref.name)
    wait = options.get("wait_time_seconds", 10)
    if isinstance(wait, int) and wait > 0 and state.int("ReceiveMessageWaitTimeSeconds") == 0:
        found.append(
            make(
                "sqs_broker.I007",
                _(
                    "ReceiveMessageWaitTimeSeconds is 0 (SQS's default for new queues): kombu "
                    "asks for %(wait)s s on every receive so the workers long-poll anyway, "
                    "but any other consumer of this queue short-polls."
                )
                % {"wait": wait},
                _(
                    "aws sqs set-queue-attributes --queue-url %(url)s --attributes "
                    "ReceiveMessageWaitTimeSeconds=%(wait)s"
                )
                % {"url": state.url, "wait": wait},
                queue=ref.name,
            )
        )
    if state.attributes.get("ContentBasedDeduplication") == "true":
        found.append(
            make(
                "sqs_broker.I008",
                _(
                    "ContentBasedDeduplication is on, but kombu sends every Celery message "
                    "with a random MessageDeduplicationId, so identical tasks are not "
                    "deduplicated."
                ),
                _("Pass MessageDeduplicationId to apply_async where duplicates must collapse."),
                queue=ref.name,
            )
        )
    if redrive:
        found += _dead_letter(app, state, redrive, options, existing)
    return found


def _dead_letter(
    app: Celery,
    state: sqs.QueueState,
    redrive: Mapping[str, Any],
    options: Mapping[str, Any],
    existing: Collection[tuple[str, str]],
) -> list[Finding]:
    ref = state.ref
    found: list[Finding] = []
    dlq, owner = redrive["name"], redrive["account"]
    if owner is not None and (owner, dlq) not in existing:
        try:
            exists = sqs.queue_exists(
                dlq, owner, ref.name if ref.source == "predefined" else None, app
            )
        except Exception as exc:
            found.append(_call_failed(exc, "sqs:GetQueueUrl", ref.name))
        else:
            if not exists:
                found.append(
                    make(
                        "sqs_broker.E022",
                        _(
                            "The RedrivePolicy sends messages to dead-letter queue %(dlq)r, "
                            "which does not exist: kombu leaves rejected messages in the queue "
                            "for a move that has nowhere to go, so they come back until they "
                            "expire."
                        )
                        % {"dlq": dlq},
                        _("Create %(dlq)r, or point the RedrivePolicy at an existing queue.")
                        % {"dlq": dlq},
                        queue=ref.name,
                    )
                )
    spec = (options.get("predefined_queues") or {}).get(ref.name) or {}
    policy = spec.get("backoff_policy") if isinstance(spec, Mapping) else None
    max_receive = redrive["max_receive_count"]
    if policy:
        last = max(int(k) for k in policy)
        if last >= max_receive:
            found.append(
                make(
                    "sqs_broker.W012",
                    _(
                        "The backoff policy plans attempts up to %(attempts)s, but the "
                        "dead-letter queue takes the message after %(max)s receives: policy "
                        "keys from %(max)s on never apply."
                    )
                    % {"attempts": last + 1, "max": max_receive},
                    _("Set maxReceiveCount to at least %(needed)s, or shorten the policy.")
                    % {"needed": last + 1},
                    queue=ref.name,
                )
            )
    return found


def leftovers(app: Celery, max_age: float | None = None) -> list[Finding]:
    """W017: pidbox and celeryev queues left under the prefix.

    The listing is the one :func:`sqs.inventory` discovers queues with, when
    younger than ``max_age``, so the dashboard lists the queues once.
    """
    options = _options(app)
    if options.get("predefined_queues"):
        return []
    prefix = sqs.entity_name(options.get("queue_name_prefix", "") or "")
    try:
        names_found = sqs.list_queue_names(prefix, app, max_age)
    except Exception as exc:
        return [_call_failed(exc, "sqs:ListQueues")]
    cut = len(prefix)
    left = sorted(n for n in names_found if n.endswith("-pidbox") or n[cut:].startswith("celeryev"))
    if not left:
        return []
    shown = ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")
    return [
        make(
            "sqs_broker.W017",
            _(
                "%(count)s leftover remote-control or event queues (%(names)s): SQS does not "
                "serve remote control or events, and nobody reads them."
            )
            % {"count": len(left), "names": shown},
            _(
                "Turn remote control and events off (see W006, W007), then delete them: aws "
                "sqs delete-queue --queue-url URL."
            ),
        )
    ]


def online(
    app: Celery | None = None,
    states: list[sqs.QueueState] | None = None,
    known: Iterable[sqs.QueueState] = (),
) -> list[Finding]:
    """Pitfalls found on the live queues; bounded by the clients' timeouts.

    ``states`` (from ``sqs.fetch(sqs.inventory(app))``) are reused when given.
    ``known`` are other queues already read (the dashboard's dead-letter
    queues): a dead-letter queue among them is not asked about again.
    When the endpoint cannot be reached or the credentials are rejected, that
    one finding is returned (see :func:`could_not_check`).
    """
    app = _celery_app(app)
    if not _is_sqs(app):
        return []
    found = identity(app)
    if could_not_check(found):
        return found
    found += assume(app)
    # Given states are as old as the listing they came with; our own are fresh.
    max_age: float | None = None
    if states is None:
        max_age = 0
        try:
            refs = sqs.inventory(app, discover=False)
        except Exception as exc:
            return [*found, _call_failed(exc, "sqs:ListQueues")]
        states = sqs.fetch(refs, app, max_age=max_age)
    # A queue URL ends in /ACCOUNT/NAME, as a dead-letter queue's ARN does.
    existing = {
        tuple(state.url.rstrip("/").rsplit("/", 2)[-2:])
        for state in (*states, *known)
        if state.url and state.error is None
    }
    for state in states:
        found += queue_findings(app, state, existing)
    unconfirmed = "sqs_broker.I009" in {f.id for f in found}
    if unconfirmed and states and all(_unanswered(state) for state in states):
        # Neither STS nor any queue answered as AWS does: nothing was checked.
        found.append(
            make(
                "sqs_broker.E017",
                _(
                    "The endpoint %(endpoint)s answers, but not as SQS: no queue could be "
                    "read, so nothing was checked."
                )
                % {"endpoint": sqs.endpoint_url(app)},
                _("Point SQS_ENDPOINT_URL at an SQS-compatible endpoint (or unset it for AWS)."),
            )
        )
        return [_scrubbed(f) for f in found]
    found += leftovers(app, max_age)
    return [_scrubbed(f) for f in found]


def online_within(seconds: float, app: Celery | None = None) -> list[Finding]:
    """:func:`online`, or E017 when it has not finished within ``seconds``.

    Each call is bounded by the clients' timeouts, but a slow endpoint
    answering every call just in time adds them up: this bounds the whole.
    The checks run on a daemon thread, so an endless answer cannot hold the
    process at exit.
    """
    app = _celery_app(app)
    language = translation.get_language()
    result: list[list[Finding]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with translation.override(language):
                result.append(online(app))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=run, name="sqs-online-checks", daemon=True)
    worker.start()
    worker.join(seconds)
    if failure:
        raise failure[0]
    if result:
        return result[0]
    return [
        make(
            "sqs_broker.E017",
            _(
                "The online checks did not finish within %(seconds)s s: the endpoint "
                "%(endpoint)s answers too slowly to be checked."
            )
            % {"seconds": _seconds(seconds), "endpoint": sqs.endpoint_url(app) or "AWS"},
            _(
                "Check the network path to SQS, or allow more time with --timeout "
                "(SQS_BROKER_CONNECT_TIMEOUT and SQS_BROKER_READ_TIMEOUT bound each call)."
            ),
        )
    ]


def _unanswered(state: sqs.QueueState) -> bool:
    if state.error is None:
        return False
    return sqs.failure_kind(state.error_code, state.error) in ("other", "unreachable")


def _scrubbed(finding: Finding) -> Finding:
    """Error texts from SQS pass through :mod:`sqs_broker.redact` before anyone sees them."""
    return Finding(
        finding.id, finding.level, scrub(finding.message), scrub(finding.hint), finding.queue
    )
