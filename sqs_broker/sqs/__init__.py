"""Talking to SQS for checks and the dashboard: one import for the modules below.

Only this package (and :mod:`sqs_broker.publishing` for sends, and
:mod:`sqs_broker.actions` through its clients) calls SQS:

- :mod:`~sqs_broker.sqs.clients`: clients by kombu's rules, bounded timeouts, STS roles;
- :mod:`~sqs_broker.sqs.inventory`: which queues the app uses (declared, predefined, listed);
- :mod:`~sqs_broker.sqs.attributes`: their attributes, fetched concurrently and shared;
- :mod:`~sqs_broker.sqs.errors`: what a failed call means, worded once;
- :mod:`~sqs_broker.sqs.cloudwatch`: the oldest message's age.

The names here are the modules' own objects, so ``sqs.fetch`` and
``sqs.attributes.fetch`` are one function.
"""

from __future__ import annotations

from sqs_broker.sqs.attributes import (
    ATTRIBUTES,
    QueueState,
    fetch,
    fetch_one,
    forget,
    redrive_policy,
)
from sqs_broker.sqs.clients import (
    Purpose,
    assume_role,
    caller_identity,
    client,
    sts_client,
)
from sqs_broker.sqs.cloudwatch import (
    CLOUDWATCH_BATCH,
    CLOUDWATCH_LOOKBACK,
    Ages,
    age_queries,
    cloudwatch_client,
    cloudwatch_wanted,
    oldest_ages,
    on_aws,
    read_ages,
)
from sqs_broker.sqs.errors import (
    CREDENTIAL_CODES,
    DENIED_CODES,
    MAX_ERROR_MESSAGE,
    Failure,
    error_text,
    failure_kind,
    readable_error,
)
from sqs_broker.sqs.inventory import (
    QueueRef,
    Source,
    dead_letter_ref,
    inventory,
    list_queue_names,
    list_queue_urls,
    queue_exists,
)

__all__ = [
    "ATTRIBUTES",
    "CLOUDWATCH_BATCH",
    "CLOUDWATCH_LOOKBACK",
    "CREDENTIAL_CODES",
    "DENIED_CODES",
    "MAX_ERROR_MESSAGE",
    "Ages",
    "Failure",
    "Purpose",
    "QueueRef",
    "QueueState",
    "Source",
    "age_queries",
    "assume_role",
    "caller_identity",
    "client",
    "cloudwatch_client",
    "cloudwatch_wanted",
    "dead_letter_ref",
    "error_text",
    "failure_kind",
    "fetch",
    "fetch_one",
    "forget",
    "inventory",
    "list_queue_names",
    "list_queue_urls",
    "oldest_ages",
    "on_aws",
    "queue_exists",
    "read_ages",
    "readable_error",
    "redrive_policy",
    "sts_client",
]
