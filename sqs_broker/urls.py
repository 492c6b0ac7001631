"""``stats.json`` and ``metrics``; include under any prefix, e.g. ``path("sqs/", include(...))``."""

from __future__ import annotations

from django.urls import path

from sqs_broker import views

app_name = "sqs_broker"

urlpatterns = [
    path("stats.json", views.stats_json, name="stats"),
    path("metrics", views.metrics_view, name="metrics"),
]
