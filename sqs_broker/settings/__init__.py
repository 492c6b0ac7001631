"""Environment -> Celery-over-SQS settings.

This module is the only place that reads SQS variables from the environment.
:func:`celery_settings` is a pure function of a mapping (``os.environ`` by
default) and returns Django settings in Celery's ``CELERY_`` namespace;
:func:`include` is the one line a settings module adds::

    from sqs_broker.settings import include
    include(globals())

Every bad value raises :class:`~django.core.exceptions.ImproperlyConfigured` naming
the variable, what is wrong and the valid range, never the value of a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from kombu.utils.url import safequote

from sqs_broker.settings.labels import register as register_transport_labels
from sqs_broker.settings.parse import (
    ENDPOINT_RE,
    SECRETS,
    TRUE,
    boolean,
    holds_secret,
    integer,
    number,
    raw,
    read_secret,
    secrets_in,
    shown,
)
from sqs_broker.settings.payloads import large_payloads
from sqs_broker.settings.predefined import predefined_queues
from sqs_broker.settings.remote import apply_remote_control, remote_control

register_transport_labels()

#: Variables this module reads; docs/configuration.md documents each one.
VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECRET_ACCESS_KEY_FILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "SQS_CREDENTIALS_IN_URL",
    "CELERY_BROKER_URL",
    "SQS_REGION",
    "SQS_ENDPOINT_URL",
    "SQS_VISIBILITY_TIMEOUT",
    "SQS_VISIBILITY_LEASE",
    "SQS_POLLING_INTERVAL",
    "SQS_WAIT_TIME_SECONDS",
    "SQS_QUEUE_NAME_PREFIX",
    "SQS_PREDEFINED_QUEUES",
    "SQS_PREDEFINED_QUEUES_FILE",
    "SQS_STS_ROLE_ARN",
    "SQS_STS_TOKEN_TIMEOUT",
    "SQS_STS_TOKEN_BUFFER_TIME",
    "CELERY_RESULT_BACKEND",
    "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT",
    "SQS_TRANSPORT",
    "SQS_REMOTE_CONTROL",
    "SQS_LARGE_PAYLOAD_BUCKET",
    "SQS_LARGE_PAYLOAD_PREFIX",
    "SQS_LARGE_PAYLOAD_ENDPOINT_URL",
)

# The defaults and SQS's limits live in sqs_broker.limits; these names stay importable here.
from sqs_broker.limits import (  # noqa: E402
    DEFAULT_POLLING_INTERVAL,
    DEFAULT_REGION,
    DEFAULT_STS_TOKEN_TIMEOUT,
    DEFAULT_VISIBILITY_LEASE,
    DEFAULT_VISIBILITY_TIMEOUT,
    DEFAULT_WAIT_TIME_SECONDS,
    MAX_STS_TOKEN_TIMEOUT,
    MAX_VISIBILITY_TIMEOUT,
    MAX_WAIT_TIME_SECONDS,
    MIN_STS_TOKEN_TIMEOUT,
)

#: Result backends that create a queue per task on the broker: never with SQS.
FORBIDDEN_RESULT_SCHEMES = ("amqp", "rpc")


@dataclass(frozen=True)
class Credentials:
    """Static AWS keys read from the environment; secrets are kept out of repr."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='**')"


def credentials(env: Mapping[str, str]) -> Credentials | None:
    """The static keys of the environment, or ``None`` to let boto3's chain decide."""
    key_id = raw(env, "AWS_ACCESS_KEY_ID")
    secret = read_secret(env, "AWS_SECRET_ACCESS_KEY")
    if key_id is None and secret is None:
        return None
    if key_id is None or secret is None:
        missing = "AWS_ACCESS_KEY_ID" if key_id is None else "AWS_SECRET_ACCESS_KEY"
        raise ImproperlyConfigured(
            f"{missing} is missing: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or neither to use boto3's credential chain (profile, IAM role)."
        )
    return Credentials(key_id, secret, raw(env, "AWS_SESSION_TOKEN"))


def endpoint(env: Mapping[str, str]) -> tuple[str, bool] | None:
    """``(host[:port], is_secure)`` of ``SQS_ENDPOINT_URL``, or ``None`` for AWS."""
    value = raw(env, "SQS_ENDPOINT_URL")
    if value is None:
        return None
    if not ENDPOINT_RE.match(value):
        raise ImproperlyConfigured(
            "SQS_ENDPOINT_URL must be http(s)://host[:port] with no path or credentials, "
            f"e.g. http://127.0.0.1:4566; got {shown(value)}."
        )
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ImproperlyConfigured("SQS_ENDPOINT_URL has a port outside 1-65535.")
    return parts.netloc, parts.scheme == "https"


#: The fix for a broker URL whose keys are not quoted, named in the refusal.
_BROKER_URL_FIX = (
    "quote the key and secret with kombu.utils.url.safequote, or leave CELERY_BROKER_URL "
    "unset and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with "
    "SQS_CREDENTIALS_IN_URL=true if they must travel in the URL)"
)


def check_broker_url(url: str, name: str = "CELERY_BROKER_URL") -> None:
    """Refuse a broker URL that kombu would split inside its user info.

    An AWS secret holds '/' about half the time; unquoted, it ends the host
    part early, so kombu reads a piece of the secret as the host or the port
    ("Port could not be cast to integer value as 'wJalr...'") in every error,
    log and e-mail from then on. The message shows no part of the URL.
    """
    rest = url.partition("://")[2]
    # Where urlsplit ends the host part: an '@' after it was meant for the user info.
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    cut = f"{name} cannot be parsed: "
    if "@" in rest[end:]:
        raise ImproperlyConfigured(
            cut + "its user info holds an unquoted '/', '?' or '#' (common in AWS secrets), "
            f"so the secret would be read as the host; {_BROKER_URL_FIX}."
        )
    try:
        urlsplit(url).port  # noqa: B018 - parsing is the check
    except ValueError:
        raise ImproperlyConfigured(
            cut + "its port is not a number from 0 to 65535 (an unquoted ':' or '/' in the "
            f"user info reads as one); {_BROKER_URL_FIX}."
        ) from None


def broker_url(env: Mapping[str, str]) -> str:
    """The final broker URL: explicit ``CELERY_BROKER_URL`` or one built for SQS."""
    explicit = raw(env, "CELERY_BROKER_URL")
    if explicit is not None:
        check_broker_url(explicit)
        return explicit
    host = ""
    where = endpoint(env)
    if where is not None:
        host = where[0]
    creds = credentials(env)
    in_url = boolean(env, "SQS_CREDENTIALS_IN_URL", False)
    if in_url:
        if creds is None:
            raise ImproperlyConfigured(
                "SQS_CREDENTIALS_IN_URL is true but AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY are not set."
            )
        if creds.session_token is not None:
            # kombu builds its SQS client from the URL's user and password
            # only, so a session token would be dropped and every call denied.
            raise ImproperlyConfigured(
                "AWS_SESSION_TOKEN cannot travel in the broker URL: set "
                "SQS_CREDENTIALS_IN_URL=false so boto3 reads all three keys from the environment."
            )
        # safequote, not quote: kombu unquotes the URL's password, so every
        # '/', '+', '=', '@', ':' and '%' must be escaped to parse back byte-identical.
        return f"sqs://{safequote(creds.access_key_id)}:{safequote(creds.secret_access_key)}@{host}"
    return f"sqs://{host}" if host else "sqs://"


def region(env: Mapping[str, str]) -> str:
    """``SQS_REGION``, else ``AWS_DEFAULT_REGION``, else us-east-1; each one set must be known.

    AWS_DEFAULT_REGION is checked even beside SQS_REGION: boto3 reads it for
    every other client (STS in ``sqs_check``, S3 for payloads).
    """
    for source in ("SQS_REGION", "AWS_DEFAULT_REGION"):
        value = raw(env, source)
        if value is not None:
            check_region(source, value)
    return raw(env, "SQS_REGION") or raw(env, "AWS_DEFAULT_REGION") or DEFAULT_REGION


def check_region(source: str, value: str) -> None:
    """``ImproperlyConfigured`` naming ``source`` unless botocore knows ``value`` as a region.

    botocore's own list, read offline: a mistyped region (``eu-westt-1``) is
    otherwise accepted by every check and fails only when a client resolves
    an endpoint that does not exist, as a DNS error far from its cause.
    """
    from sqs_broker.settings.regions import botocore_version, closest_region, known_regions

    if value in known_regions():
        return
    message = f"{source} must be an AWS region name such as eu-west-1; got {shown(value)}."
    if not holds_secret(value):  # say what is known and what is close
        match = closest_region(value)
        message = (
            message[:-1]
            + f": botocore {botocore_version()} knows no such region"
            + (
                f"; did you mean {match}?"
                if match
                else " (a region newer than botocore needs pip install -U botocore)."
            )
        )
    raise ImproperlyConfigured(message)


def result_backend(env: Mapping[str, str]) -> str | None:
    """``CELERY_RESULT_BACKEND``, refusing the backends that need a queue per task."""
    value = raw(env, "CELERY_RESULT_BACKEND")
    if value is None:
        return None
    scheme = value.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in FORBIDDEN_RESULT_SCHEMES:
        raise ImproperlyConfigured(
            f"CELERY_RESULT_BACKEND uses {scheme}://, which SQS cannot serve: it would "
            "create a queue per task that is never collected. Use django-db, "
            "dynamodb:// or s3:// instead."
        )
    return value


def transport_options(env: Mapping[str, str]) -> dict[str, Any]:
    """kombu's ``broker_transport_options`` for the SQS transport."""
    wait = integer(
        env, "SQS_WAIT_TIME_SECONDS", DEFAULT_WAIT_TIME_SECONDS, 0, MAX_WAIT_TIME_SECONDS
    )
    options: dict[str, Any] = {
        "region": region(env),
        "visibility_timeout": integer(
            env, "SQS_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT, 0, MAX_VISIBILITY_TIMEOUT
        ),
        # The project's transport receives with this visibility and extends it
        # while the worker holds the message (0: the queue's timeout, no extension).
        "visibility_lease": integer(
            env, "SQS_VISIBILITY_LEASE", DEFAULT_VISIBILITY_LEASE, 0, MAX_VISIBILITY_TIMEOUT
        ),
        "polling_interval": number(env, "SQS_POLLING_INTERVAL", DEFAULT_POLLING_INTERVAL, 0),
        "wait_time_seconds": wait,
        # New queues default to ReceiveMessageWaitTimeSeconds=0; give the
        # queues Celery creates the same long polling as its receive calls.
        "sqs-creation-attributes": {"ReceiveMessageWaitTimeSeconds": str(wait)},
        # Each receive brings the message's SentTimestamp with its receive count:
        # telemetry measures queue wait (send -> start) without another SQS call.
        "fetch_message_attributes": {
            "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp"]
        },
    }
    prefix = env.get("SQS_QUEUE_NAME_PREFIX")
    if prefix:
        if len(prefix) > 80:
            raise ImproperlyConfigured(
                "SQS_QUEUE_NAME_PREFIX must be shorter than 80 characters (the SQS name limit)."
            )
        options["queue_name_prefix"] = prefix
    where = endpoint(env)
    if where is not None:
        options["is_secure"] = where[1]
    queues = predefined_queues(env)
    if queues:
        options["predefined_queues"] = queues
        if raw(env, "SQS_VISIBILITY_TIMEOUT") is None:
            # kombu creates no predefined queue, so the option would only
            # pretend to matter: each queue's own VisibilityTimeout rules.
            del options["visibility_timeout"]
    role = raw(env, "SQS_STS_ROLE_ARN")
    timeout = integer(
        env,
        "SQS_STS_TOKEN_TIMEOUT",
        DEFAULT_STS_TOKEN_TIMEOUT,
        MIN_STS_TOKEN_TIMEOUT,
        MAX_STS_TOKEN_TIMEOUT,
    )
    buffer = integer(env, "SQS_STS_TOKEN_BUFFER_TIME", 0, 0, MAX_STS_TOKEN_TIMEOUT)
    if role is not None:
        if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", role):
            raise ImproperlyConfigured(
                "SQS_STS_ROLE_ARN must be an IAM role ARN such as "
                "arn:aws:iam::123456789012:role/celery-sqs."
            )
        if buffer >= timeout:
            raise ImproperlyConfigured(
                f"SQS_STS_TOKEN_BUFFER_TIME ({buffer}) must be less than "
                f"SQS_STS_TOKEN_TIMEOUT ({timeout})."
            )
        options["sts_role_arn"] = role
        options["sts_token_timeout"] = timeout
        if buffer:
            options["sts_token_buffer_time"] = buffer
    return options


#: ``SQS_TRANSPORT`` values: the transport class each one selects for an ``sqs://`` broker.
TRANSPORTS = {
    "sqs_broker": "sqs_broker.transport:Transport",
    "kombu": "kombu.transport.SQS:Transport",
}


def broker_transport(env: Mapping[str, str], url: str) -> str | None:
    """``SQS_TRANSPORT``: the transport class for an ``sqs://`` broker, else ``None``.

    The URL keeps its ``sqs://`` scheme; Celery's ``broker_transport`` picks the
    class. A broker URL of another scheme keeps the transport its scheme names.
    """
    value = (raw(env, "SQS_TRANSPORT") or "sqs_broker").lower()
    if value not in TRANSPORTS:
        raise ImproperlyConfigured(
            f"SQS_TRANSPORT must be one of {', '.join(TRANSPORTS)}; got {shown(value)}."
        )
    if url.split("://", 1)[0].lower() != "sqs":
        return None
    return TRANSPORTS[value]


def celery_settings(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Django settings in the ``CELERY_`` namespace, built from ``env``.

    With ``SQS_LARGE_PAYLOAD_BUCKET`` set, the ``SQS_BROKER_LARGE_PAYLOAD_*``
    settings too (:func:`large_payloads`).
    """
    env = os.environ if env is None else env
    token = SECRETS.set(secrets_in(env))
    try:
        settings = _celery_settings(env)
    finally:
        SECRETS.reset(token)
    if env is os.environ:
        export_file_secrets(os.environ)
    return settings


def export_file_secrets(environ: MutableMapping[str, str]) -> None:
    """Put the secret of ``AWS_SECRET_ACCESS_KEY_FILE`` in ``AWS_SECRET_ACCESS_KEY``.

    boto3 reads the secret from the process environment only, and kombu's SQS
    transport hands it keys from the broker URL or a predefined queue only:
    without this, a secret given as a file reaches nobody unless it travels in
    the URL (the worker loops on "Partial credentials found in env", sqs_check
    reports E018). Exporting it gives the file exactly the inline variable's
    effect in every process the settings load in (worker, web server,
    commands, publishers) and in the processes they start; the log scrubbing
    then knows it too. Settings for another mapping than ``os.environ`` never
    touch the process environment.
    """
    if raw(environ, "AWS_SECRET_ACCESS_KEY_FILE") is None:
        return
    secret = read_secret(environ, "AWS_SECRET_ACCESS_KEY")
    if secret is not None:
        environ["AWS_SECRET_ACCESS_KEY"] = secret


def _celery_settings(env: Mapping[str, str]) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "CELERY_BROKER_URL": broker_url(env),
        "CELERY_BROKER_TRANSPORT_OPTIONS": transport_options(env),
        "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP": True,
        # No events on SQS (celeryev is a topic exchange); remote control: settings/remote.py.
        "CELERY_WORKER_SEND_TASK_EVENTS": False,
        "CELERY_TASK_SEND_SENT_EVENT": False,
        "CELERY_WORKER_ENABLE_REMOTE_CONTROL": False,
        "CELERY_TASK_SERIALIZER": "json",
        "CELERY_RESULT_SERIALIZER": "json",
        "CELERY_ACCEPT_CONTENT": ["json"],
        "CELERY_RESULT_EXTENDED": True,  # results keep the task's name (the task page's title)
    }
    transport = broker_transport(env, settings["CELERY_BROKER_URL"])
    if transport is not None:
        settings["CELERY_BROKER_TRANSPORT"] = transport
    backend = result_backend(env)
    if backend is not None:
        settings["CELERY_RESULT_BACKEND"] = backend
    soft = number(env, "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", 0.0, 0)
    if raw(env, "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT") is not None:
        settings["CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"] = soft
    settings.update(large_payloads(env))
    remote_control(env, settings)
    return settings


def celery_conf(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """:func:`celery_settings` as a Celery app's own lowercase configuration keys."""
    return {
        name.removeprefix("CELERY_").lower(): value
        for name, value in celery_settings(env).items()
        if name.startswith("CELERY_")
    }


#: The variables whose presence makes a setting the environment's explicit
#: choice; every other value ``include()`` builds is a default.
EXPLICIT_SOURCES: dict[str, tuple[str, ...]] = {
    "CELERY_BROKER_URL": ("CELERY_BROKER_URL", "SQS_ENDPOINT_URL", "SQS_CREDENTIALS_IN_URL"),
    "CELERY_RESULT_BACKEND": ("CELERY_RESULT_BACKEND",),
    "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": ("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT",),
    "SQS_BROKER_LARGE_PAYLOAD_BUCKET": ("SQS_LARGE_PAYLOAD_BUCKET",),
    "SQS_BROKER_LARGE_PAYLOAD_PREFIX": ("SQS_LARGE_PAYLOAD_PREFIX",),
    "SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL": ("SQS_LARGE_PAYLOAD_ENDPOINT_URL",),
    "SQS_BROKER_REMOTE_CONTROL": ("SQS_REMOTE_CONTROL",),
}
#: The same for the keys of ``CELERY_BROKER_TRANSPORT_OPTIONS``. AWS_DEFAULT_REGION
#: is not here: AWS sets it in most of its runtimes, so it stays a default.
EXPLICIT_OPTION_SOURCES: dict[str, tuple[str, ...]] = {
    "region": ("SQS_REGION",),
    "visibility_timeout": ("SQS_VISIBILITY_TIMEOUT",),
    "visibility_lease": ("SQS_VISIBILITY_LEASE",),
    "polling_interval": ("SQS_POLLING_INTERVAL",),
    "wait_time_seconds": ("SQS_WAIT_TIME_SECONDS",),
    "queue_name_prefix": ("SQS_QUEUE_NAME_PREFIX",),
    "is_secure": ("SQS_ENDPOINT_URL",),
    "predefined_queues": ("SQS_PREDEFINED_QUEUES", "SQS_PREDEFINED_QUEUES_FILE"),
    "sts_role_arn": ("SQS_STS_ROLE_ARN",),
    "sts_token_timeout": ("SQS_STS_TOKEN_TIMEOUT",),
    "sts_token_buffer_time": ("SQS_STS_TOKEN_BUFFER_TIME",),
    "supports_fanout": ("SQS_REMOTE_CONTROL",),
}
_OPTIONS = "CELERY_BROKER_TRANSPORT_OPTIONS"
_CREATION = "sqs-creation-attributes"


def _explicit(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` the environment sets (a false SQS_CREDENTIALS_IN_URL does not)."""
    for name in names:
        value = raw(env, name)
        if value is None:
            continue
        if name == "SQS_CREDENTIALS_IN_URL" and value.lower() not in TRUE:
            continue
        return name
    return None


def merge(
    project: Mapping[str, Any], built: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any]:
    """The settings ``include()`` writes: ``built`` from ``env`` merged with ``project``'s own.

    Per setting, and per key of the transport options: what the project set
    wins over a default; the environment fills what the project left unset;
    a setting both chose, with different values, raises ImproperlyConfigured
    naming the setting and the variable (never the values: they may be
    secrets), since silently dropping either choice is the trap.
    """
    conflicts: list[str] = []

    def pick(where: str, mine: Any, theirs: Any, sources: tuple[str, ...]) -> Any:
        variable = _explicit(env, sources)
        if variable is not None and mine != theirs:
            conflicts.append(f"{where} (and the environment variable {variable})")
        return mine

    merged: dict[str, Any] = {}
    for name, value in built.items():
        if name not in project:
            merged[name] = value
        elif name == _OPTIONS:
            merged[name] = _merge_options(project[name], value, env, pick)
        else:
            merged[name] = pick(name, project[name], value, EXPLICIT_SOURCES.get(name, ()))
    if conflicts:
        raise ImproperlyConfigured(
            "Set both in the settings module (before include()) and in the environment, "
            f"with different values: {'; '.join(conflicts)}. Keep one: remove the setting, "
            "or unset the variable."
        )
    return merged


def _merge_options(
    project: Any, built: Mapping[str, Any], env: Mapping[str, str], pick: Any
) -> dict[str, Any]:
    if not isinstance(project, Mapping):
        raise ImproperlyConfigured(
            f"{_OPTIONS} must be a dict of kombu SQS transport options; "
            f"got {type(project).__name__}."
        )
    options = dict(project)
    for key, value in built.items():
        if key == _CREATION:
            continue
        if key in project:
            pick(f"{_OPTIONS}[{key!r}]", project[key], value, EXPLICIT_OPTION_SOURCES.get(key, ()))
        else:
            options[key] = value
    if (
        "predefined_queues" in options
        and "visibility_timeout" not in project
        and _explicit(env, EXPLICIT_OPTION_SOURCES["visibility_timeout"]) is None
    ):
        # As transport_options() does: predefined queues keep their own attribute.
        options.pop("visibility_timeout", None)
    # Queues Celery creates long-poll as the receive calls do, whoever chose the wait.
    creation = dict(project.get(_CREATION) or {})
    creation.setdefault("ReceiveMessageWaitTimeSeconds", str(options["wait_time_seconds"]))
    options[_CREATION] = creation
    return options


def include(namespace: MutableMapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    """Add the Celery settings and the secret-masking error filter to ``namespace``.

    Call it after the settings it should respect: a ``CELERY_`` setting (or a
    key of ``CELERY_BROKER_TRANSPORT_OPTIONS``) the module set before this line
    wins over the defaults; the environment fills what is unset; both at once,
    differing, is an error (see :func:`merge`). A module that wants the last
    word regardless sets its values after this line.
    """
    env = os.environ if env is None else env
    apply_remote_control(namespace, merge(namespace, celery_settings(env), env))
    limit = namespace.get("CELERY_TASK_TIME_LIMIT")
    options = namespace.get(_OPTIONS)
    if limit and isinstance(options, MutableMapping):
        # The visibility lease extends a message no longer than its task may run;
        # the transport is given the limit rather than reading Celery's current app.
        options.setdefault("task_time_limit", limit)
    namespace.setdefault(
        "DEFAULT_EXCEPTION_REPORTER_FILTER", "sqs_broker.redact.SafeExceptionReporterFilter"
    )
    namespace.setdefault("DEFAULT_EXCEPTION_REPORTER", "sqs_broker.redact.SafeExceptionReporter")
