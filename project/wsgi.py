"""WSGI entry point. sqs_broker's wrapper refuses to serve with DEBUG and keys in the URL.

A configuration error stops the server with one line on stderr, not a traceback.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from sqs_broker.guard import exit_on_configuration_error, get_wsgi_application  # noqa: E402

with exit_on_configuration_error():
    application = get_wsgi_application()
