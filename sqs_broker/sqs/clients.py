"""SQS, STS and CloudWatch clients built by kombu's rules, with bounded timeouts.

Clients are built from the Celery app's live broker settings by the same rules
kombu's transport follows (endpoint from the URL's host, ``is_secure``,
region, URL credentials, per-queue keys of predefined queues, an STS role),
but with bounded timeouts and few retries, so a check or a page answers in
bounded time when the endpoint is down. Clients and STS credentials are kept
per process.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import boto3
from botocore.config import Config

from sqs_broker import limits
from sqs_broker.cache import Local
from sqs_broker.conf import app_settings
from sqs_broker.topology import Topology

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


#: One client per service, region, endpoint, credentials and timeouts.
_clients: Local[tuple[Any, ...], Any] = Local("boto3 clients")


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
    with _clients.lock:
        client = _clients.entries.get(cache_key)
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
            client = _clients.entries[cache_key] = session.client(service, **kwargs)
    return client


def sts_client(topo: Topology) -> Any:
    """STS with the app's main credentials (for GetCallerIdentity and AssumeRole)."""
    key, secret = topo.credentials
    return _client("sts", topo.region, topo.endpoint, key, secret)


#: Credentials by role and endpoint, with the time they stop being used. Its lock is
#: held across the AssumeRole call: the fetch pool's threads all need the credentials
#: at once, and one call should serve them all.
_sts: Local[tuple[str, str | None], tuple[float, dict[str, str]]] = Local("STS credentials")


#: What an AssumeRole answer's credentials hold that a client needs.
CREDENTIAL_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken")


def assume_role(topo: Topology) -> dict[str, str]:
    """Temporary credentials of ``sts_role_arn``, reused until shortly before expiry."""
    options = topo.options
    key = (options["sts_role_arn"], topo.endpoint)
    with _sts.lock:
        cached = _sts.entries.get(key)
        if cached and cached[0] > time.time():
            return cached[1]
        duration = int(options.get("sts_token_timeout", limits.KOMBU_STS_TOKEN_TIMEOUT))
        answer = sts_client(topo).assume_role(
            RoleArn=key[0], RoleSessionName="sqs-broker", DurationSeconds=duration
        )
        given = answer["Credentials"]
        credentials = {name: str(given[name]) for name in CREDENTIAL_FIELDS}
        buffer = int(options.get("sts_token_buffer_time", 0) or 0)
        _sts.entries[key] = (time.time() + duration - max(buffer, 60), credentials)
    return credentials


def client(queue: str | None, topo: Topology, purpose: Purpose = "checks") -> Any:
    """An SQS client for ``queue`` (its SQS name), by kombu's rules for credentials.

    ``purpose`` picks the timeouts: ``SQS_BROKER_CONNECT_TIMEOUT`` and
    ``SQS_BROKER_READ_TIMEOUT`` for the checks and the dashboard,
    ``SQS_BROKER_PUBLISH_*`` for :func:`sqs_broker.publishing.publish_many`.
    """
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


def caller_identity(topo: Topology) -> dict[str, str]:
    """STS GetCallerIdentity with the app's main credentials: ``{"account", "arn"}``."""
    answer = sts_client(topo).get_caller_identity()
    return {"account": str(answer.get("Account", "")), "arn": str(answer.get("Arn", ""))}
