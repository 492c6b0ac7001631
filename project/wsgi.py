"""WSGI entry point. sqs_broker's wrapper refuses to serve with DEBUG and keys in the URL."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from sqs_broker.guard import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
