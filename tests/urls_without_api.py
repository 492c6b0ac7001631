"""A project's URLs that mount the admin but not ``sqs_broker.urls``."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
