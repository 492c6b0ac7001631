"""The example project's Celery app, configured from Django settings."""

from __future__ import annotations

import os

from celery import Celery

from sqs_broker import guard

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# Every `celery -A project ...` imports this module first: a bad setting is
# then one line on stderr, not a traceback through Celery and click.
guard.install_excepthook()

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Here as well as in AppConfig.ready(): `celery events` never sets Django up.
guard.install(app)
app.autodiscover_tasks()
