"""The dashboard's queue table, ready to print: what the template would otherwise work out per row.

Django's template engine costs some microseconds per tag, and the queue table
repeats its tags for every queue: with 300 queues, ~20 ``{% translate %}``,
three ``{% url %}`` and two ``{% include %}`` per row made 0.4 s of rendering.
So what is the same on every row is worked out here once per
request (the words of the table, translated in the request's language; each
link's pattern, reversed once) and what differs is worked out once per row
(the links, the sparklines, the sentences around a figure). The template only
prints; the markup contract (ids, classes, ``data-label``) stays in the template.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.urls import reverse
from django.utils.formats import localize
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from sqs_broker.dashboard import charts
from sqs_broker.schema import FindingRow, QueueRow
from sqs_broker.templatetags.sqs_broker_tags import age

if TYPE_CHECKING:
    from sqs_broker.history import HistoryWindow


def labels() -> dict[str, str]:
    """The table's words in the active language: column heads (each cell's data-label), badges."""
    return {
        "queue": _("Queue"),
        "visible": _("Visible"),
        "in_flight": _("In flight"),
        "delayed": _("Delayed"),
        "oldest": _("Oldest message"),
        "visibility_timeout": _("Visibility timeout"),
        "receive_wait": _("Receive wait"),
        "dlq": _("Dead-letter queue"),
        "trend": _("Trend"),
        "actions": _("Actions"),
        "quarantine": _("quarantine"),
        "quarantine_title": _("Poison messages the workers moved here"),
        "estimate": _("estimate"),
        "none": _("none"),
        "purge": _("Purge"),
        "redrive": _("Move back from DLQ"),
        "read_only": _("read-only: found under the prefix, not declared by this app"),
    }


class QueueLink:
    """The URL of a per-queue admin view for any queue name, from one ``reverse``.

    The pattern is reversed once with a marker in the name's place; each name
    is then quoted as :func:`django.urls.reverse` quotes it, so the links are
    the ones ``{% url view name %}`` gave, at the cost of a concatenation.
    """

    #: Letters only: reverse() quotes nothing in it, and no admin path holds it.
    MARKER = "SQSBROKERQUEUENAME"

    def __init__(self, view: str) -> None:
        self.head, self.tail = reverse(view, args=[self.MARKER]).split(self.MARKER)

    def __call__(self, name: str) -> str:
        return self.head + quote(name, safe=RFC3986_SUBDELIMS + "/~:@") + self.tail


class Sparks:
    """Sparkline markup for the rows, with the sentences translated once."""

    def __init__(self) -> None:
        self.label = _("Visible messages, %(count)s samples, peak %(peak)s")
        self.empty = format_html(
            '<span class="sqs-muted" title="{}">{}</span>',
            _("Run manage.py sqs_sample or the beat task to record history."),
            _("no history"),
        )
        self.collecting = _("collecting: first line in %(minutes)s min")
        self.collecting_title = _(
            "%(count)s samples so far; a line needs samples in two time buckets."
        )

    def __call__(self, spark: dict[str, Any]) -> SafeString:
        """The ``<svg>`` of ``spark``; "no history" without a sample, "collecting" before a line."""
        if not spark["count"]:
            return self.empty
        if spark.get("collecting_minutes") is not None:
            return format_html(
                '<span class="sqs-muted sqs-collecting" title="{}">{}</span>',
                self.collecting_title % {"count": localize(spark["count"])},
                self.collecting % {"minutes": localize(spark["collecting_minutes"])},
            )
        label = self.label % {"count": localize(spark["count"]), "peak": localize(spark["peak"])}
        return charts.sparkline_svg(spark, label)


def queue_rows(
    queues: Iterable[QueueRow],
    series: Mapping[str, Sequence[dict[str, Any]]],
    findings: Iterable[FindingRow],
    *,
    window: HistoryWindow,
    can_purge: bool,
    can_redrive: bool,
) -> list[dict[str, Any]]:
    """One entry per queue: its row ``q`` as :func:`sqs_broker.stats.gather` gives it, and
    what the template prints of it.

    ``spark``/``dlq_spark`` are the geometry (:func:`~sqs_broker.charts.sparkline`),
    ``spark_html``/``dlq_spark_html`` their markup, ``url``/``dlq_url`` the queue pages,
    ``purge_url``/``redrive_url`` the actions the user may take on this queue (else
    ``None``), ``oldest``/``oldest_title`` the oldest message's age and where it came from,
    ``dlq_after`` "after n receives", ``backoff_chart`` and the queue's ``findings``.
    """
    page = QueueLink("admin:sqs_broker_dashboard_queue")
    purge = QueueLink("admin:sqs_broker_dashboard_purge")
    redrive = QueueLink("admin:sqs_broker_dashboard_redrive")
    sparks = Sparks()
    after = _("after %(n)s receives")
    titles: dict[str, str] = {}
    by_queue: dict[str | None, list[FindingRow]] = {}
    for finding in findings:
        by_queue.setdefault(finding["queue"], []).append(finding)
    rows = []
    for q in queues:
        name, dlq, source = q["name"], q["dlq"], q["oldest_age_source"]
        spark = charts.sparkline(series.get(name, []), window=window)
        dlq_spark = charts.sparkline(series.get(dlq["name"], []), window=window) if dlq else None
        if source and source not in titles:
            titles[source] = _("Source: %(source)s") % {"source": source}
        rows.append(
            {
                "q": q,
                "url": page(name),
                "spark": spark,
                "spark_html": sparks(spark),
                "dlq_url": page(dlq["name"]) if dlq else None,
                "dlq_spark": dlq_spark,
                "dlq_spark_html": sparks(dlq_spark) if dlq_spark and dlq_spark["count"] else None,
                "dlq_after": after % {"n": localize(dlq["max_receive_count"])} if dlq else None,
                "oldest": age(q["oldest_age"]),
                "oldest_title": titles[source] if source else None,
                "purge_url": purge(name)
                if can_purge and not q["error"] and not q["read_only"]
                else None,
                "redrive_url": redrive(name)
                if can_redrive and dlq and dlq["visible"] and not q["read_only"]
                else None,
                "backoff_chart": charts.backoff_chart(q["backoff_policy"]),
                "findings": by_queue.get(name, []),
            }
        )
    return rows
