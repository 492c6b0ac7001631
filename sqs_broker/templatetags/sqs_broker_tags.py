"""``{% load sqs_broker_tags %}``: ages and moments for people ("3 hours, 2 minutes", not
"10920.0 s"; "5 minutes ago" with the local time on hover, not a raw ISO timestamp)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def age(seconds: float | None) -> str:
    """A duration in seconds the way Django says ages, in the page's language; "—" for none.

    Under a minute it is whole seconds: Django's ``timesince`` counts minutes at least.
    """
    if seconds is None:
        return "—"
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{int(seconds)} s"
    now = timezone.now()
    return timesince(now - timedelta(seconds=seconds), now)


def _moment(value: Any) -> datetime | None:
    """A datetime from a datetime, an ISO 8601 text or seconds since the epoch; else ``None``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


@register.simple_tag
def relative_time(value: Any, element_id: str = "") -> str:
    """``<time>`` saying how long ago (or how soon) ``value`` is, the absolute local time on hover.

    ``value`` is a datetime, an ISO 8601 text (as ``stats.json`` writes) or
    seconds since the epoch; anything else renders as "—". The local time is
    the project's current time zone (``TIME_ZONE``, or one activated per user).
    ``element_id`` names the element for the page's script, which rewrites it
    on refresh to its ``data-now`` text.
    """
    moment = _moment(value)
    if moment is None:
        return "—"
    now = timezone.now()
    local = timezone.localtime(moment)
    absolute = f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 60:
        text = _("just now") if seconds >= 0 else _("in under a minute")
    elif seconds > 0:
        text = _("%(age)s ago") % {"age": timesince(moment, now)}
    else:
        text = _("in %(age)s") % {"age": timeuntil(moment, now)}
    return format_html(
        '<time{} datetime="{}" title="{}" data-now="{}">{}</time>',
        format_html(' id="{}"', element_id) if element_id else "",
        moment.isoformat(),
        absolute,
        _("just now"),
        text,
    )


@register.filter
def percent(share: float | None) -> str:
    """A share (0.45) as people read it ("45 %"); "—" for none."""
    if share is None:
        return "—"
    return f"{float(share) * 100:.0f} %"
