"""ASGI entry point. sqs_broker's wrapper refuses to serve with DEBUG and keys in the URL.

A configuration error stops the server with one line on stderr, not a traceback.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from sqs_broker.guard import (  # noqa: E402
    SERVER_EXIT_STATUS,
    exit_on_configuration_error,
    get_asgi_application,
)

# Status 4 is gunicorn's "App failed to load": it stops instead of booting
# new workers that fail the same way, forever.
with exit_on_configuration_error(SERVER_EXIT_STATUS):
    application = get_asgi_application()
