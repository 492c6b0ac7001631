"""The oldest message's age from CloudWatch, which SQS's own attributes do not carry.

CloudWatch's ApproximateAgeOfOldestMessage comes once a minute per queue.
One GetMetricData call reads up to 500 queues (its limit), with the checks'
timeouts and retries; answers are reused for ``SQS_BROKER_CLOUDWATCH_TTL``
seconds, so a scrape every 15 s costs one call a minute.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqs_broker import limits
from sqs_broker.cache import Local
from sqs_broker.conf import app_settings
from sqs_broker.sqs.clients import _client, assume_role
from sqs_broker.sqs.errors import error_text
from sqs_broker.topology import Topology

CLOUDWATCH_BATCH = limits.CLOUDWATCH_MAX_QUERIES
CLOUDWATCH_LOOKBACK = limits.CLOUDWATCH_LOOKBACK


@dataclass
class Ages:
    """Oldest-message ages by queue name, or why CloudWatch gave none."""

    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    fetched_at: float = 0.0


#: Answers by endpoint, region, access key and queue names.
_ages: Local[tuple[Any, ...], Ages] = Local("CloudWatch ages")


def on_aws(topo: Topology) -> bool:
    """Whether the broker talks to AWS itself (no endpoint, or an ``amazonaws.com`` one)."""
    endpoint = topo.endpoint
    if not endpoint:
        return True
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


def cloudwatch_wanted(topo: Topology) -> bool:
    """``SQS_BROKER_CLOUDWATCH``, or when it is ``None``, :func:`on_aws`."""
    setting = app_settings.CLOUDWATCH
    return on_aws(topo) if setting is None else setting


def cloudwatch_client(topo: Topology) -> Any:
    """CloudWatch with the app's main credentials, region and endpoint, bounded like SQS's."""
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


def oldest_ages(names: Iterable[str], topo: Topology, max_age: float | None = None) -> Ages:
    """ApproximateAgeOfOldestMessage of ``names`` from CloudWatch, one call per 500 queues.

    Never raises: a failure (no permission for ``cloudwatch:GetMetricData``, say)
    comes back in :attr:`Ages.error`, and the caller says where its figure came from.
    """
    names = sorted(set(names))
    key = (topo.endpoint, topo.region, topo.credentials[0], tuple(names))
    ttl = app_settings.CLOUDWATCH_TTL if max_age is None else max_age
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
    _ages.put(key, found)
    return found
