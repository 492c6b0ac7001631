"""``{% load sqs_broker_tags %}``: ages for people ("3 hours, 2 minutes", not "10920.0 s")."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

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
