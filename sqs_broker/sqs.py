"""Talking to SQS for checks and the dashboard: clients, queue inventory, attributes.

Only this module (and :mod:`sqs_broker.publishing` for sends) calls SQS.
Clients are built from the Celery app's live broker settings by the same rules
kombu's transport follows (endpoint from the URL's host, ``is_secure``,
region, URL credentials, per-queue keys of predefined queues, an STS role),
but with bounded timeouts and few retries, so a check or a page answers in
bounded time when the endpoint is down.

Attributes of many queues are fetched concurrently on a bounded pool and
reused for ``SQS_BROKER_CACHE_TTL`` seconds, so 100 queues cost about one
round-trip of wall time and a reload storm does not multiply SQS calls.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from kombu.transport.SQS import CHARS_REPLACE_TABLE
from kombu.utils.url import url_to_parts

from sqs_broker.conf import app_settings
from sqs_broker.redact import scrub

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
)

DEFAULT_QUEUE = "celery"


def celery_app(app: Celery | None = None) -> Celery:
    """``app``, or the current Celery app (the project's, once it is imported)."""
    if app is not None:
        return app
    from celery import current_app

    return current_app._get_current_object()


def transport_options(app: Celery | None = None) -> dict[str, Any]:
    """A copy of the app's ``broker_transport_options``."""
    return dict(celery_app(app).conf.broker_transport_options or {})


# --- names -------------------------------------------------------------------


def entity_name(name: str) -> str:
    """The SQS name kombu gives a queue name (punctuation rewritten, '.fifo' kept)."""
    if name.endswith(".fifo"):
        return name[: -len(".fifo")].translate(CHARS_REPLACE_TABLE) + ".fifo"
    return name.translate(CHARS_REPLACE_TABLE)


def canonical_name(celery_queue: str, app: Celery | None = None) -> str:
    """The SQS queue name kombu uses for a Celery queue: prefix + sanitised name."""
    prefix = transport_options(app).get("queue_name_prefix", "") or ""
    return entity_name(prefix + celery_queue)


def declared_queues(app: Celery | None = None) -> list[str]:
    """Celery queue names the app declares: default queue, ``task_queues``, routes."""
    conf = celery_app(app).conf
    names: list[str] = [conf.task_default_queue or DEFAULT_QUEUE]
    for queue in conf.task_queues or ():
        names.append(getattr(queue, "name", None) or str(queue))
    routes = conf.task_routes
    for route_map in routes if isinstance(routes, list | tuple) else [routes]:
        if isinstance(route_map, Mapping):
            for route in route_map.values():
                queue = route.get("queue") if isinstance(route, Mapping) else None
                name = getattr(queue, "name", queue)
                if isinstance(name, str) and name:
                    names.append(name)
    return list(dict.fromkeys(names))


# --- clients -----------------------------------------------------------------


def endpoint_url(app: Celery | None = None) -> str | None:
    """The endpoint kombu will use: the broker URL's host with ``is_secure``."""
    parts = url_to_parts(celery_app(app).conf.broker_url or "sqs://")
    if not parts.hostname:
        return None
    scheme = "https" if transport_options(app).get("is_secure") else "http"
    port = f":{parts.port}" if parts.port else ""
    return f"{scheme}://{parts.hostname}{port}"


def region(app: Celery | None = None) -> str:
    """The region kombu signs for: the transport option, else boto3's, else us-east-1."""
    return transport_options(app).get("region") or boto3.Session().region_name or "us-east-1"


def _url_credentials(app: Celery | None) -> tuple[str | None, str | None]:
    parts = url_to_parts(celery_app(app).conf.broker_url or "sqs://")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return user, password


def _config(retries: int = 2) -> Config:
    return Config(
        connect_timeout=app_settings.CONNECT_TIMEOUT,
        read_timeout=app_settings.READ_TIMEOUT,
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
) -> Any:
    timeouts = (app_settings.CONNECT_TIMEOUT, app_settings.READ_TIMEOUT)
    cache_key = (service, region_name, endpoint, key, secret, token, timeouts)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            session = boto3.Session(
                region_name=region_name,
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                aws_session_token=token,
            )
            kwargs: dict[str, Any] = {"config": _config()}
            if endpoint:
                kwargs["endpoint_url"] = endpoint
                kwargs["use_ssl"] = endpoint.startswith("https")
            client = _clients[cache_key] = session.client(service, **kwargs)
    return client


def sts_client(app: Celery | None = None) -> Any:
    """STS with the app's main credentials (for GetCallerIdentity and AssumeRole)."""
    key, secret = _url_credentials(app)
    return _client("sts", region(app), endpoint_url(app), key, secret)


_sts_credentials: dict[tuple[str, str | None], tuple[float, dict[str, str]]] = {}
#: Held across the AssumeRole call: the fetch pool's threads all need the
#: credentials at once, and one call should serve them all.
_sts_lock = threading.Lock()


def assume_role(app: Celery | None = None) -> dict[str, str]:
    """Temporary credentials of ``sts_role_arn``, reused until shortly before expiry."""
    options = transport_options(app)
    key = (options["sts_role_arn"], endpoint_url(app))
    with _sts_lock:
        cached = _sts_credentials.get(key)
        if cached and cached[0] > time.time():
            return cached[1]
        duration = int(options.get("sts_token_timeout", 900))
        answer = sts_client(app).assume_role(
            RoleArn=key[0], RoleSessionName="sqs-broker", DurationSeconds=duration
        )
        credentials = answer["Credentials"]
        buffer = int(options.get("sts_token_buffer_time", 0) or 0)
        _sts_credentials[key] = (time.time() + duration - max(buffer, 60), credentials)
    return credentials


def client(queue: str | None = None, app: Celery | None = None) -> Any:
    """An SQS client for ``queue`` (its SQS name), by kombu's rules for credentials."""
    options = transport_options(app)
    predefined = options.get("predefined_queues") or {}
    key, secret = _url_credentials(app)
    where, region_name = endpoint_url(app), region(app)
    if queue is not None and queue in predefined:
        spec = predefined[queue]
        region_name = spec.get("region", region_name)
        if options.get("sts_role_arn"):
            creds = assume_role(app)
            return _client(
                "sqs", region_name, where,
                creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"],
            )  # fmt: skip
        key = spec.get("access_key_id", key)
        secret = spec.get("secret_access_key", secret)
    return _client("sqs", region_name, where, key, secret)


def clear_caches() -> None:
    """Forget clients, STS credentials and cached attributes (tests, config changes)."""
    with _clients_lock:
        _clients.clear()
    with _sts_lock:
        _sts_credentials.clear()
    with _cache_lock:
        _cache.clear()
        _listings.clear()


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


#: ListQueues answers by (prefix, endpoint), reused for SQS_BROKER_CACHE_TTL like
#: the attributes, so a reload storm costs one listing per TTL, not one per request.
_listings: dict[tuple[str, str | None], tuple[float, list[str]]] = {}


def list_queue_urls(
    prefix: str, app: Celery | None = None, max_age: float | None = None
) -> list[str]:
    """Every queue URL under ``prefix``, paging past SQS's 1,000 per answer.

    An answer younger than ``max_age`` (default ``SQS_BROKER_CACHE_TTL``) is reused.
    """
    key = (prefix, endpoint_url(app))
    ttl = app_settings.CACHE_TTL if max_age is None else max_age
    with _cache_lock:
        hit = _listings.get(key)
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return list(hit[1])
    urls = _list_queue_urls(prefix, app)
    with _cache_lock:
        _listings[key] = (time.monotonic(), urls)
    return list(urls)


def _list_queue_urls(prefix: str, app: Celery | None) -> list[str]:
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


def inventory(app: Celery | None = None, discover: bool | None = None) -> list[QueueRef]:
    """Declared, predefined and (with a prefix, or when asked) discovered queues.

    Discovery lists queues and raises when that fails; callers that must
    still show something ask again with ``discover=False``. A declared queue
    that discovery finds keeps the URL it was listed with, which saves its
    ``GetQueueUrl`` call in :func:`fetch_one`.
    """
    options = transport_options(app)
    predefined = options.get("predefined_queues") or {}
    refs: dict[str, QueueRef] = {}
    for name, spec in predefined.items():
        refs[name] = QueueRef(name, "predefined", spec.get("url"), name)
    if not predefined:
        for celery_name in declared_queues(app):
            name = canonical_name(celery_name, app)
            refs.setdefault(name, QueueRef(name, "declared", None, celery_name))
        prefix = options.get("queue_name_prefix", "") or ""
        if discover if discover is not None else (bool(prefix) or app_settings.DISCOVER_BY_PREFIX):
            # kombu names a queue entity_name(prefix + name): "app." lists as "app-".
            for url in list_queue_urls(entity_name(prefix), app):
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


_cache: dict[tuple[str, str | None], QueueState] = {}
_cache_lock = threading.Lock()


def error_text(exc: BaseException) -> tuple[str, str | None]:
    """A short, secret-free description of an SQS error and its code."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "ClientError"
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            code = "QueueDoesNotExist"
        operation = getattr(exc, "operation_name", "") or "call"
        return scrub(f"{code} on {operation}: {error.get('Message', '')}".strip()), code
    if isinstance(exc, BotoCoreError):
        return scrub(f"{type(exc).__name__}: {exc}"), "Unreachable"
    return scrub(f"{type(exc).__name__}: {exc}"), type(exc).__name__


def fetch_one(ref: QueueRef, app: Celery | None = None) -> QueueState:
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


def fetch(
    refs: Iterable[QueueRef], app: Celery | None = None, max_age: float | None = None
) -> list[QueueState]:
    """Attributes of every queue, concurrently, reusing answers younger than ``max_age``."""
    refs = list(refs)
    ttl = app_settings.CACHE_TTL if max_age is None else max_age
    endpoint = endpoint_url(app)
    now = time.time()
    results: dict[int, QueueState] = {}
    missing: list[tuple[int, QueueRef]] = []
    with _cache_lock:
        for index, ref in enumerate(refs):
            cached = _cache.get((ref.name, endpoint))
            if cached is not None and cached.ref == ref and now - cached.fetched_at < ttl:
                results[index] = cached
            else:
                missing.append((index, ref))
    if missing:
        workers = min(app_settings.MAX_WORKERS, len(missing))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqs-attrs") as pool:
            states = list(pool.map(lambda ref: fetch_one(ref, app), (r for _, r in missing)))
        with _cache_lock:
            for (index, ref), state in zip(missing, states, strict=True):
                results[index] = state
                _cache[(ref.name, endpoint)] = state
    return [results[i] for i in range(len(refs))]


def forget(queue: str, app: Celery | None = None) -> None:
    """Drop one queue's cached attributes (after a purge or a move)."""
    with _cache_lock:
        _cache.pop((queue, endpoint_url(app)), None)


# --- actions -----------------------------------------------------------------
# Changes made from the dashboard: purge a queue, move a dead-letter queue's
# messages back. Each takes a fresh QueueState (never a cached one) and says
# exactly what it did, so the caller can log it.

#: Error codes (and HTTP statuses) meaning "this endpoint has no StartMessageMoveTask".
_MOVE_UNSUPPORTED = frozenset(
    {"InvalidAction", "UnsupportedOperation", "NotImplemented", "UnknownOperationException"}
)
_move_unsupported: set[str | None] = set()

#: SQS's batch limit for SendMessageBatch and DeleteMessageBatch.
BATCH = 10


def _action_client(state: QueueState, app: Celery | None) -> Any:
    return client(state.ref.name if state.ref.source == "predefined" else None, app)


def purge(state: QueueState, app: Celery | None = None) -> None:
    """PurgeQueue. SQS allows one per queue every 60 s (``PurgeQueueInProgress``)."""
    _action_client(state, app).purge_queue(QueueUrl=state.url)
    forget(state.ref.name, app)


def start_message_move(
    source: QueueState, destination: QueueState, app: Celery | None = None
) -> str | None:
    """StartMessageMoveTask from a dead-letter queue; ``None`` if the endpoint lacks it."""
    where = endpoint_url(app)
    if where in _move_unsupported:
        return None
    try:
        answer = _action_client(source, app).start_message_move_task(
            SourceArn=source.attributes["QueueArn"],
            DestinationArn=destination.attributes["QueueArn"],
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _MOVE_UNSUPPORTED or status in (404, 501) or status >= 500:
            _move_unsupported.add(where)
            return None
        raise
    forget(source.ref.name, app)
    forget(destination.ref.name, app)
    return str(answer.get("TaskHandle", ""))


def _send_batch(dst: Any, url: str | None, entries: list[dict[str, Any]], result: Any) -> set[str]:
    """Send ``entries``; the Ids SQS accepted. Refusals are added to ``result.errors``."""
    try:
        sent = dst.send_message_batch(QueueUrl=url, Entries=entries)
    except ClientError as exc:
        # The whole batch was refused (one body too large, say): send one by
        # one, so the others still move and only the bad one stays behind.
        result.errors.append(error_text(exc)[0])
        ok = set()
        for entry in entries:
            try:
                dst.send_message(QueueUrl=url, **{k: v for k, v in entry.items() if k != "Id"})
            except ClientError as one:
                result.errors.append(error_text(one)[0])
            else:
                ok.add(entry["Id"])
        return ok
    for item in sent.get("Failed", []):
        result.errors.append(scrub(f"{item.get('Code')}: {item.get('Message', '')}"))
    return {item["Id"] for item in sent.get("Successful", [])}


@dataclass
class MoveResult:
    """What a message-by-message move did: moved, left in place, and why."""

    moved: int = 0
    failed: int = 0
    not_deleted: int = 0
    errors: list[str] = field(default_factory=list)


def move_messages(
    source: QueueState,
    destination: QueueState,
    app: Celery | None = None,
    limit: int = 1000,
    hold: int = 60,
) -> MoveResult:
    """Receive -> send -> delete in batches of 10, deleting only what was sent.

    A message is deleted from ``source`` only after ``destination`` accepted
    it, so the move itself loses nothing; a failed send leaves the message in
    ``source``, where it becomes visible again after ``hold`` seconds. A
    failed delete (rare) leaves a copy in both queues and is counted in
    ``not_deleted`` so the caller can say so.
    """
    result = MoveResult()
    src, dst = _action_client(source, app), _action_client(destination, app)
    fifo = destination.ref.fifo or destination.attributes.get("FifoQueue") == "true"
    try:
        while result.moved + result.failed < limit:
            count = min(BATCH, limit - result.moved - result.failed)
            answer = src.receive_message(
                QueueUrl=source.url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=hold,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            entries = []
            for index, message in enumerate(messages):
                entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
                if message.get("MessageAttributes"):
                    entry["MessageAttributes"] = message["MessageAttributes"]
                if fifo:
                    attributes = message.get("Attributes", {})
                    entry["MessageGroupId"] = attributes.get("MessageGroupId", "default")
                    entry["MessageDeduplicationId"] = attributes.get(
                        "MessageDeduplicationId", message["MessageId"]
                    )
                entries.append(entry)
            ok = _send_batch(dst, destination.url, entries, result)
            result.failed += len(messages) - len(ok)
            if not ok:
                break  # nothing was accepted: stop rather than spin on the same error
            result.moved += len(ok)
            try:
                deleted = src.delete_message_batch(
                    QueueUrl=source.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                        if str(i) in ok
                    ],
                )
            except Exception:
                # Sent but not deleted: each is in both queues now, and must be counted so.
                result.not_deleted += len(ok)
                raise
            result.not_deleted += len(deleted.get("Failed", []))
    except Exception as exc:  # report what was done before the error, and the error
        result.errors.append(error_text(exc)[0])
    forget(source.ref.name, app)
    forget(destination.ref.name, app)
    return result


def peek(state: QueueState, app: Celery | None = None, count: int = 10) -> list[dict[str, Any]]:
    """Up to ``count`` (<= 10) messages, made visible again at once.

    SQS has no read-only peek: this is a receive with a zero visibility
    timeout, so each message's ``ApproximateReceiveCount`` goes up by one
    (which counts towards ``maxReceiveCount`` and the backoff policy). The
    dashboard offers it behind a POST and the redrive permission.
    """
    answer = _action_client(state, app).receive_message(
        QueueUrl=state.url,
        MaxNumberOfMessages=max(1, min(count, BATCH)),
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(answer.get("Messages", []))


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


def caller_identity(app: Celery | None = None) -> dict[str, str]:
    """STS GetCallerIdentity with the app's main credentials: ``{"account", "arn"}``."""
    answer = sts_client(app).get_caller_identity()
    return {"account": str(answer.get("Account", "")), "arn": str(answer.get("Arn", ""))}


def queue_exists(
    name: str, owner: str | None = None, via: str | None = None, app: Celery | None = None
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
    prefix: str, app: Celery | None = None, max_age: float | None = None
) -> list[str]:
    """Queue names under ``prefix``; the listing is shared with :func:`list_queue_urls`."""
    return [url.rstrip("/").rsplit("/", 1)[-1] for url in list_queue_urls(prefix, app, max_age)]
