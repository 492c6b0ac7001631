"""Test settings: the example project, pointed at this run's moto server.

The server's address is fixed here; the server itself starts only when a test
needs it (the ``sqs_endpoint`` fixture), so tests that declare no SQS run without it.
"""

import os

import django

from tests.support import localserver

localserver.address()

from project.settings import *  # noqa: E402,F403
from project.settings import BASE_DIR, DATABASES  # noqa: E402

# A file, not memory, so worker subprocesses see what the tests write.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One per run, so runs side by side do not share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SQS_BROKER_TELEMETRY = False

# Every page the tests serve carries the example's strict Content-Security-Policy
# (project/csp.py), so the browser tests prove no page needs inline code.

# Django 6.1 configures e-mail through MAILERS and warns that its implicit default
# mailer goes away; the test runner swaps in its outbox either way.
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
