"""Talking to SQS for checks and the dashboard: clients, queue inventory, attributes.

Only this module (and :mod:`sqs_broker.publishing` for sends) calls SQS.
Clients are built from the Celery app's live broker settings by the same rules
kombu's transport follows (endpoint from the URL's host, ``is_secure``,
region, URL credentials, per-queue keys of predefined queues, an STS role),
but with bounded timeouts and few retries, so a check or a page answers in
bounded time when the endpoint is down.

Attributes of many queues are fetched concurrently on a bounded pool and
reused for ``SQS_BROKER_CACHE_TTL`` seconds through Django's cache framework
(:mod:`sqs_broker.cache`), so 100 queues cost about one round-trip of wall
time and a reload storm does not multiply SQS calls, in one process or, with
a shared cache, in all of them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sqs_broker import cache, limits, topology
from sqs_broker.conf import app_settings
from sqs_broker.redact import scrub
from sqs_broker.topology import DEFAULT_QUEUE as DEFAULT_QUEUE
from sqs_broker.topology import Topology, entity_name

if TYPE_CHECKING:
    from celery import Celery

Source = Literal["declared", "predefined", "prefix"]

#: Every attribute the dashboard and the checks read, in one call per queue.
ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "VisibilityTimeout",
    "ReceiveMessageWaitTimeSeconds",
    "DelaySeconds",
    "MessageRetentionPeriod",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "QueueArn",
    "MaximumMessageSize",
)


def celery_app(app: Celery | Topology | None = None) -> Celery:
    """The Celery app meant: see :func:`sqs_broker.topology.celery_app`."""
    return topology.celery_app(app)


def transport_options(app: Celery | Topology | None = None) -> dict[str, Any]:
    """A copy of the app's ``broker_transport_options``."""
    return dict(Topology.of(app).options)


# --- names -------------------------------------------------------------------


def canonical_name(celery_queue: str, app: Celery | Topology | None = None) -> str:
    """The SQS queue name kombu uses for a Celery queue: prefix + sanitised name."""
    return Topology.of(app).canonical_name(celery_queue)


def declared_queues(app: Celery | Topology | None = None) -> list[str]:
    """Celery queue names the app declares: default queue, ``task_queues``, routes."""
    return list(Topology.of(app).declared)


# --- clients -----------------------------------------------------------------


def endpoint_url(app: Celery | Topology | None = None) -> str | None:
    """The endpoint kombu will use: the broker URL's host with ``is_secure``."""
    return Topology.of(app).endpoint


def region(app: Celery | Topology | None = None) -> str:
    """The region kombu signs for: the transport option, else boto3's, else us-east-1."""
    return Topology.of(app).region


def _url_credentials(app: Celery | Topology | None) -> tuple[str | None, str | None]:
    return Topology.of(app).credentials


#: Who a client is for: the checks and the dashboard, or publishing tasks.
Purpose = Literal["checks", "publish"]


def _timeouts(purpose: Purpose) -> tuple[float, float]:
    if purpose == "publish":
        return app_settings.PUBLISH_CONNECT_TIMEOUT, app_settings.PUBLISH_READ_TIMEOUT
    return app_settings.CONNECT_TIMEOUT, app_settings.READ_TIMEOUT


def _config(purpose: Purpose = "checks", retries: int = 2) -> Config:
    connect, read = _timeouts(purpose)
    return Config(
        connect_timeout=connect,
        read_timeout=read,
        retries={"total_max_attempts": retries, "mode": "standard"},
        # One client serves the whole fetch pool: give every thread a connection
        # (botocore's default of 10 would open and drop the others each time).
        max_pool_connections=app_settings.MAX_WORKERS,
    )


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def _client(
    service: str,
    region_name: str,
    endpoint: str | None,
    key: str | None,
    secret: str | None,
    token: str | None = None,
    purpose: Purpose = "checks",
) -> Any:
    timeouts = _timeouts(purpose)
    cache_key = (service, region_name, endpoint, key, secret, token, purpose, timeouts)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            session = boto3.Session(
                region_name=region_name,
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                aws_session_token=token,
            )
            kwargs: dict[str, Any] = {"config": _config(purpose)}
            if endpoint:
                kwargs["endpoint_url"] = endpoint
                kwargs["use_ssl"] = endpoint.startswith("https")
            client = _clients[cache_key] = session.client(service, **kwargs)
    return client


def sts_client(app: Celery | Topology | None = None) -> Any:
    """STS with the app's main credentials (for GetCallerIdentity and AssumeRole)."""
    key, secret = _url_credentials(app)
    return _client("sts", region(app), endpoint_url(app), key, secret)


_sts_credentials: dict[tuple[str, str | None], tuple[float, dict[str, str]]] = {}
#: Held across the AssumeRole call: the fetch pool's threads all need the
#: credentials at once, and one call should serve them all.
_sts_lock = threading.Lock()


def assume_role(app: Celery | Topology | None = None) -> dict[str, str]:
    """Temporary credentials of ``sts_role_arn``, reused until shortly before expiry."""
    options = transport_options(app)
    key = (options["sts_role_arn"], endpoint_url(app))
    with _sts_lock:
        cached = _sts_credentials.get(key)
        if cached and cached[0] > time.time():
            return cached[1]
        duration = int(options.get("sts_token_timeout", limits.KOMBU_STS_TOKEN_TIMEOUT))
        answer = sts_client(app).assume_role(
            RoleArn=key[0], RoleSessionName="sqs-broker", DurationSeconds=duration
        )
        credentials = answer["Credentials"]
        buffer = int(options.get("sts_token_buffer_time", 0) or 0)
        _sts_credentials[key] = (time.time() + duration - max(buffer, 60), credentials)
    return credentials


def client(
    queue: str | None = None, app: Celery | Topology | None = None, purpose: Purpose = "checks"
) -> Any:
    """An SQS client for ``queue`` (its SQS name), by kombu's rules for credentials.

    ``purpose`` picks the timeouts: ``SQS_BROKER_CONNECT_TIMEOUT`` and
    ``SQS_BROKER_READ_TIMEOUT`` for the checks and the dashboard,
    ``SQS_BROKER_PUBLISH_*`` for :func:`sqs_broker.publishing.publish_many`.
    """
    topo = Topology.of(app)
    predefined = topo.predefined
    key, secret = topo.credentials
    where, region_name = topo.endpoint, topo.region
    if queue is not None and queue in predefined:
        spec = predefined[queue]
        region_name = spec.get("region", region_name)
        if topo.options.get("sts_role_arn"):
            creds = assume_role(topo)
            return _client(
                "sqs", region_name, where,
                creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"],
                purpose,
            )  # fmt: skip
        key = spec.get("access_key_id", key)
        secret = spec.get("secret_access_key", secret)
    return _client("sqs", region_name, where, key, secret, purpose=purpose)


def clear_caches() -> None:
    """Forget clients, STS credentials and cached attributes (tests, config changes)."""
    with _clients_lock:
        _clients.clear()
    with _sts_lock:
        _sts_credentials.clear()
    cache.clear()
    forget_ages()


# --- inventory ---------------------------------------------------------------


@dataclass(frozen=True)
class QueueRef:
    """A queue the app uses: its SQS name, where it was found and its URL if known."""

    name: str
    source: Source
    url: str | None = None
    celery_name: str | None = None

    @property
    def fifo(self) -> bool:
        """Whether the name is a FIFO queue's (it ends with .fifo)."""
        return self.name.endswith(".fifo")


def list_queue_urls(
    prefix: str, app: Celery | Topology | None = None, max_age: float | None = None
) -> list[str]:
    """Every queue URL under ``prefix``, paging past SQS's 1,000 per answer.

    An answer younger than ``max_age`` (default ``SQS_BROKER_CACHE_TTL``) is
    reused from the shared cache (:mod:`sqs_broker.cache`), so a reload storm
    costs one listing per TTL, not one per request or per process.
    """
    entry = cache.key("listing", prefix, endpoint_url(app))
    ttl = app_settings.CACHE_TTL if max_age is None else max_age

    def fresh(hit: Any) -> bool:
        return hit is not None and time.time() - hit[0] < ttl

    if ttl > 0:
        hit = cache.get(entry)
        if not fresh(hit):
            lease = f"{entry}:lease"
            if not cache.acquire(lease, app_settings.GATHER_TIMEOUT):
                hit = cache.wait_for([entry], app_settings.GATHER_TIMEOUT, fresh).get(entry)
            else:
                try:
                    hit = (time.time(), _list_queue_urls(prefix, app))
                    cache.set_many({entry: hit}, ttl)
                finally:
                    cache.delete(lease)
        if fresh(hit):
            return list(hit[1])
    return _list_queue_urls(prefix, app)


def _list_queue_urls(prefix: str, app: Celery | Topology | None) -> list[str]:
    sqs = client(app=app)
    urls: list[str] = []
    kwargs: dict[str, Any] = {"MaxResults": 1000}
    if prefix:
        kwargs["QueueNamePrefix"] = prefix
    while True:
        answer = sqs.list_queues(**kwargs)
        urls.extend(answer.get("QueueUrls", []))
        token = answer.get("NextToken")
        if not token:
            return urls
        kwargs["NextToken"] = token


def inventory(app: Celery | Topology | None = None, discover: bool | None = None) -> list[QueueRef]:
    """Declared, predefined and (with a prefix, or when asked) discovered queues.

    Discovery lists queues and raises when that fails; callers that must
    still show something ask again with ``discover=False``. A declared queue
    that discovery finds keeps the URL it was listed with, which saves its
    ``GetQueueUrl`` call in :func:`fetch_one`.
    """
    topo = Topology.of(app)
    predefined = topo.predefined
    refs: dict[str, QueueRef] = {}
    for name, spec in predefined.items():
        refs[name] = QueueRef(name, "predefined", spec.get("url"), name)
    if not predefined:
        for celery_name, name in topo.declared.items():
            refs.setdefault(name, QueueRef(name, "declared", None, celery_name))
        prefix = topo.prefix
        if discover if discover is not None else (bool(prefix) or app_settings.DISCOVER_BY_PREFIX):
            # kombu names a queue entity_name(prefix + name): "app." lists as "app-".
            for url in list_queue_urls(entity_name(prefix), topo):
                name = url.rstrip("/").rsplit("/", 1)[-1]
                known = refs.get(name)
                if known is None:
                    refs[name] = QueueRef(name, "prefix", url)
                elif known.url is None:
                    refs[name] = replace(known, url=url)
    return list(refs.values())


# --- attributes --------------------------------------------------------------


@dataclass
class QueueState:
    """One queue's attributes as SQS answered, or the error it answered with."""

    ref: QueueRef
    url: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None
    #: The API call that failed ("GetQueueUrl", "AssumeRole", ...), when SQS or STS answered.
    error_operation: str | None = None
    fetched_at: float = 0.0

    @property
    def exists(self) -> bool:
        """False only when SQS answered that the queue does not exist."""
        return self.error_code != "QueueDoesNotExist"

    def int(self, name: str) -> int | None:
        """Attribute ``name`` as an integer; ``None`` when SQS did not give it."""
        value = self.attributes.get(name)
        return int(value) if value not in (None, "") else None


def redrive_policy(state: QueueState) -> dict[str, Any] | None:
    """The queue's RedrivePolicy as ``{"name", "account", "arn", "max_receive_count"}``.

    ``None`` when the queue has none, or one SQS would not have accepted.
    """
    raw = state.attributes.get("RedrivePolicy")
    if not raw:
        return None
    try:
        policy = json.loads(raw)
        arn = str(policy["deadLetterTargetArn"])
        count = int(policy["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        return None
    # arn:aws:sqs:REGION:ACCOUNT:NAME
    parts = arn.split(":")
    account = parts[4] if len(parts) >= 6 else None
    return {"name": parts[-1], "account": account, "arn": arn, "max_receive_count": count}


#: The longest SQS error message shown; the rest is cut off.
MAX_ERROR_MESSAGE = 500


def error_text(exc: BaseException) -> tuple[str, str | None]:
    """A short, secret-free description of an SQS error and its code."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "ClientError"
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            code = "QueueDoesNotExist"
        operation = getattr(exc, "operation_name", "") or "call"
        message = str(error.get("Message", "")).strip()
        if message.lstrip().lower().startswith(("<!doctype", "<html")):
            # A web page, not an SQS error: moto's 500 for a call it does not implement, a
            # proxy's error page. Its markup tells an operator nothing; its status does.
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            message = (
                f"the endpoint answered HTTP {status} with a web page, not an SQS error "
                f"(it may not support {operation})"
            )
        elif len(message) > MAX_ERROR_MESSAGE:
            message = message[:MAX_ERROR_MESSAGE] + "…"
        return scrub(f"{code} on {operation}: {message}".strip()), code
    if isinstance(exc, BotoCoreError):
        return scrub(f"{type(exc).__name__}: {exc}"), "Unreachable"
    return scrub(f"{type(exc).__name__}: {exc}"), type(exc).__name__


def fetch_one(ref: QueueRef, app: Celery | Topology | None = None) -> QueueState:
    """Resolve ``ref``'s URL if needed and read every attribute in :data:`ATTRIBUTES`."""
    state = QueueState(ref, ref.url, fetched_at=time.time())
    try:
        sqs = client(ref.name if ref.source == "predefined" else None, app)
        if state.url is None:
            state.url = sqs.get_queue_url(QueueName=ref.name)["QueueUrl"]
        answer = sqs.get_queue_attributes(QueueUrl=state.url, AttributeNames=list(ATTRIBUTES))
        state.attributes = dict(answer.get("Attributes", {}))
    except Exception as exc:  # one queue's failure is reported on that queue alone
        state.error, state.error_code = error_text(exc)
        state.error_operation = getattr(exc, "operation_name", None)
    return state


def _states_key(endpoint: str | None) -> str:
    # One entry per endpoint, a dict of states by queue name: Django's local-memory cache
    # keeps 300 entries by default, and 300 queues must not cull each other.
    return cache.key("attributes", endpoint)


def _merge_states(endpoint: str | None, states: dict[str, QueueState | None], ttl: float) -> None:
    """Write ``states`` into the endpoint's entry (``None`` drops a queue)."""
    entry = _states_key(endpoint)
    current = dict(cache.get(entry) or {})
    for name, state in states.items():
        if state is None:
            current.pop(name, None)
        else:
            current[name] = state
    now = time.time()
    longest = max(ttl, app_settings.CACHE_TTL)
    current = {n: st for n, st in current.items() if now - st.fetched_at < longest}
    cache.set_many({entry: current}, longest)


def fetch(
    refs: Iterable[QueueRef], app: Celery | Topology | None = None, max_age: float | None = None
) -> list[QueueState]:
    """Attributes of every queue, concurrently, reusing answers younger than ``max_age``.

    Answers are shared through :mod:`sqs_broker.cache`. When another process
    is already asking for the same queues, this one waits for its answers
    (up to ``SQS_BROKER_GATHER_TIMEOUT``) instead of asking SQS again.
    """
    refs = list(refs)
    topo = Topology.of(app)
    ttl = app_settings.CACHE_TTL if max_age is None else max_age
    endpoint = topo.endpoint
    entry = _states_key(endpoint)
    results: dict[int, QueueState] = {}

    def take(found: Any) -> None:
        now = time.time()
        for index, ref in enumerate(refs):
            state = (found or {}).get(ref.name)
            if (
                index not in results
                and isinstance(state, QueueState)
                and state.ref == ref
                and now - state.fetched_at < ttl
            ):
                results[index] = state

    if ttl > 0:
        take(cache.get(entry))
    missing = [(i, ref) for i, ref in enumerate(refs) if i not in results]
    lease = None
    if missing and ttl > 0:
        lease = cache.key("lease", endpoint, tuple(sorted(ref.name for _, ref in missing)))
        if not cache.acquire(lease, app_settings.GATHER_TIMEOUT):
            wanted = {ref.name: ref for _, ref in missing}

            def complete(found: Any) -> bool:
                now = time.time()
                return isinstance(found, dict) and all(
                    isinstance(found.get(n), QueueState)
                    and found[n].ref == ref
                    and now - found[n].fetched_at < ttl
                    for n, ref in wanted.items()
                )

            take(cache.wait_for([entry], app_settings.GATHER_TIMEOUT, complete).get(entry))
            missing = [(i, ref) for i, ref in enumerate(refs) if i not in results]
            lease = None
    try:
        if missing:
            started = time.time()
            workers = min(app_settings.MAX_WORKERS, len(missing))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqs-attrs") as pool:
                states = list(pool.map(lambda ref: fetch_one(ref, topo), (r for _, r in missing)))
            for (index, _ref), state in zip(missing, states, strict=True):
                # One pass, one age: its answers expire together, so the next load
                # asks for all of them under one lease. Answers stamped one by one
                # expire a few at a time, and loads in other processes would each
                # ask for a different few under leases that do not exclude each other.
                state.fetched_at = started
                results[index] = state
            _merge_states(endpoint, {ref.name: results[i] for i, ref in missing}, ttl)
    finally:
        if lease is not None:
            cache.delete(lease)
    return [results[i] for i in range(len(refs))]


def forget(queue: str, app: Celery | Topology | None = None) -> None:
    """Drop one queue's cached attributes (after a purge or a move), for every process."""
    _merge_states(endpoint_url(app), {queue: None}, app_settings.CACHE_TTL)


# --- identity and checks -----------------------------------------------------
# The calls ``sqs_check`` and the online findings make besides queue
# attributes: who the credentials are, whether the STS role can be assumed,
# whether a dead-letter queue exists, which leftover queues lie around. Each
# is one bounded call (the clients' timeouts and two attempts at most).

Failure = Literal["unreachable", "credentials", "denied", "missing", "other"]

#: Error codes meaning the credentials themselves are wrong, expired or absent.
CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidSecurity",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "NoCredentials",
    }
)

#: Error codes meaning the credentials are valid but not allowed to do this.
DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "AWS.SimpleQueueService.AccessDenied"}
)


_XML_ERROR = r"<Code>([\w.]+)</Code>(?:\s*<Message>(.*?)</Message>)?"


def readable_error(text: str) -> tuple[str, str | None]:
    """``text`` with an XML ``ErrorResponse`` body made readable, and the code inside it.

    Some endpoints (moto's IAM enforcement, proxies) answer a JSON-protocol
    call with an XML error body; botocore then reports only the HTTP status.
    """
    import re

    match = re.search(_XML_ERROR, text or "", re.S)
    if not match:
        return text, None
    head = text[: text.find("<")].rstrip(": ")
    return f"{head}: {match[1]}: {match[2] or ''}".strip(": "), match[1]


def failure_kind(exc_or_code: BaseException | str | None, text: str | None = None) -> Failure:
    """What a failed call means: endpoint down, bad credentials, denied, missing, other.

    ``text`` (an :func:`error_text`) lets a bare HTTP status be read from the body.
    """
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc_or_code, NoCredentialsError | PartialCredentialsError):
        return "credentials"
    unreachable = (
        EndpointConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
        ConnectionClosedError,
    )
    if isinstance(exc_or_code, unreachable):
        return "unreachable"
    if isinstance(exc_or_code, BotoCoreError):
        # Parameter validation and the like: botocore refused before sending.
        return "other"
    code = exc_or_code
    if isinstance(exc_or_code, BaseException):
        text, code = error_text(exc_or_code)
    if isinstance(code, str) and code.isdigit() and text:
        code = readable_error(text)[1] or code
    if code == "Unreachable":
        return "unreachable"
    if code in CREDENTIAL_CODES:
        return "credentials"
    if code in DENIED_CODES:
        return "denied"
    if code == "QueueDoesNotExist":
        return "missing"
    return "other"


def caller_identity(app: Celery | Topology | None = None) -> dict[str, str]:
    """STS GetCallerIdentity with the app's main credentials: ``{"account", "arn"}``."""
    answer = sts_client(app).get_caller_identity()
    return {"account": str(answer.get("Account", "")), "arn": str(answer.get("Arn", ""))}


def queue_exists(
    name: str,
    owner: str | None = None,
    via: str | None = None,
    app: Celery | Topology | None = None,
) -> bool:
    """Whether queue ``name`` (of account ``owner``) exists, asked with ``via``'s client."""
    kwargs: dict[str, Any] = {"QueueName": name}
    if owner:
        kwargs["QueueOwnerAWSAccountId"] = owner
    try:
        client(via, app).get_queue_url(**kwargs)
    except ClientError as exc:
        if failure_kind(exc) == "missing":
            return False
        raise
    return True


def list_queue_names(
    prefix: str, app: Celery | Topology | None = None, max_age: float | None = None
) -> list[str]:
    """Queue names under ``prefix``; the listing is shared with :func:`list_queue_urls`."""
    return [url.rstrip("/").rsplit("/", 1)[-1] for url in list_queue_urls(prefix, app, max_age)]


# --- oldest-message age (CloudWatch) -------------------------------------------
# SQS's own attributes carry no age; CloudWatch's ApproximateAgeOfOldestMessage
# does, once a minute per queue. One GetMetricData call reads up to 500 queues
# (its limit), with the checks' timeouts and retries; answers are reused for
# SQS_BROKER_CLOUDWATCH_TTL seconds, so a scrape every 15 s costs one call a minute.

CLOUDWATCH_BATCH = limits.CLOUDWATCH_MAX_QUERIES
CLOUDWATCH_LOOKBACK = limits.CLOUDWATCH_LOOKBACK


@dataclass
class Ages:
    """Oldest-message ages by queue name, or why CloudWatch gave none."""

    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    fetched_at: float = 0.0


_ages: dict[tuple[Any, ...], Ages] = {}
_ages_lock = threading.Lock()


def on_aws(app: Celery | Topology | None = None) -> bool:
    """Whether the broker talks to AWS itself (no endpoint, or an ``amazonaws.com`` one)."""
    endpoint = Topology.of(app).endpoint
    if not endpoint:
        return True
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


def cloudwatch_wanted(app: Celery | Topology | None = None) -> bool:
    """``SQS_BROKER_CLOUDWATCH``, or when it is ``None``, :func:`on_aws`."""
    setting = app_settings.CLOUDWATCH
    return on_aws(app) if setting is None else setting


def cloudwatch_client(app: Celery | Topology | None = None) -> Any:
    """CloudWatch with the app's main credentials, region and endpoint, bounded like SQS's."""
    topo = Topology.of(app)
    key, secret = topo.credentials
    if topo.options.get("sts_role_arn"):
        creds = assume_role(topo)
        return _client(
            "cloudwatch", topo.region, topo.endpoint,
            creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"],
        )  # fmt: skip
    return _client("cloudwatch", topo.region, topo.endpoint, key, secret)


def age_queries(names: list[str], period: int = 60) -> list[dict[str, Any]]:
    """GetMetricData queries of ApproximateAgeOfOldestMessage, one per queue (ids ``q0``...)."""
    return [
        {
            "Id": f"q{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": [{"Name": "QueueName", "Value": name}],
                },
                "Period": period,
                "Stat": "Maximum",
            },
            "ReturnData": True,
        }
        for index, name in enumerate(names)
    ]


def read_ages(names: list[str], results: list[dict[str, Any]]) -> dict[str, float]:
    """The latest value of each query's answer, by queue name; queues without data are left out."""
    ages: dict[str, float] = {}
    for result in results:
        ident = str(result.get("Id", ""))
        if not ident.startswith("q") or not ident[1:].isdigit() or int(ident[1:]) >= len(names):
            continue
        pairs = sorted(
            zip(result.get("Timestamps") or [], result.get("Values") or [], strict=False),
            key=lambda pair: pair[0],
        )
        if pairs:
            ages[names[int(ident[1:])]] = float(pairs[-1][1])
    return ages


def oldest_ages(
    names: Iterable[str], app: Celery | Topology | None = None, max_age: float | None = None
) -> Ages:
    """ApproximateAgeOfOldestMessage of ``names`` from CloudWatch, one call per 500 queues.

    Never raises: a failure (no permission for ``cloudwatch:GetMetricData``, say)
    comes back in :attr:`Ages.error`, and the caller says where its figure came from.
    """
    names = sorted(set(names))
    topo = Topology.of(app)
    key = (topo.endpoint, topo.region, topo.credentials[0], tuple(names))
    ttl = app_settings.CLOUDWATCH_TTL if max_age is None else max_age
    with _ages_lock:
        hit = _ages.get(key)
    if hit is not None and time.time() - hit.fetched_at < ttl:
        return hit
    found = Ages(fetched_at=time.time())
    if names:
        try:
            watch = cloudwatch_client(topo)
            end = time.time()
            for start in range(0, len(names), CLOUDWATCH_BATCH):
                batch = names[start : start + CLOUDWATCH_BATCH]
                kwargs: dict[str, Any] = {
                    "MetricDataQueries": age_queries(batch),
                    "StartTime": end - CLOUDWATCH_LOOKBACK,
                    "EndTime": end,
                    "ScanBy": "TimestampDescending",
                }
                results: list[dict[str, Any]] = []
                while True:
                    answer = watch.get_metric_data(**kwargs)
                    results.extend(answer.get("MetricDataResults", []))
                    if not answer.get("NextToken"):
                        break
                    kwargs["NextToken"] = answer["NextToken"]
                found.seconds.update(read_ages(batch, results))
        except Exception as exc:  # reported on the faces; the estimate takes over
            found.error = error_text(exc)[0]
    with _ages_lock:
        _ages[key] = found
    return found


def forget_ages() -> None:
    """Forget cached CloudWatch answers (tests)."""
    with _ages_lock:
        _ages.clear()
