"""Settings of the example project, read from the environment with django-environ."""

from __future__ import annotations

from pathlib import Path

import django
import environ

from project.csp import POLICY
from sqs_broker.settings import include

BASE_DIR = Path(__file__).resolve().parent.parent

# FileAwareEnv: DJANGO_SECRET_KEY_FILE names a file holding the key (make run
# keeps a generated one in .local/, which git ignores).
env = environ.FileAwareEnv()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="").strip()
if not SECRET_KEY:
    if not DEBUG:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set: set it (or DJANGO_SECRET_KEY_FILE, a file holding it) "
            "to a long random string: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    SECRET_KEY = "insecure-development-key-only-with-DJANGO_DEBUG"  # noqa: S105
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles, so its runserver (which exits on E001) is the one used.
    "sqs_broker",
    "django.contrib.staticfiles",
    "django_celery_results",
    "project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# A strict Content-Security-Policy on every response (project/csp.py): Django's own
# from 6.0, the example's stand-in on 5.2.
if django.VERSION >= (6, 0):
    SECURE_CSP = POLICY
    MIDDLEWARE.insert(1, "django.middleware.csp.ContentSecurityPolicyMiddleware")
else:
    MIDDLEWARE.insert(1, "project.csp.StrictCSPMiddleware")

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The environment banner of templates/admin/base_site.html.
                "project.context_processors.environment",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web server write at once: WAL lets readers run beside
    # the one writer, and the timeout waits for a lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

CELERY_RESULT_EXTENDED = True

include(globals())

# Defaults the environment may override, so they come after include(): set
# before it, a CELERY_RESULT_BACKEND variable would conflict with them.
# Results in the Django database; the environment may choose DynamoDB or S3.
globals().setdefault("CELERY_RESULT_BACKEND", "django-db")
# A cold shutdown (SIGQUIT, or SIGTERM with REMAP_SIGTERM=SIGQUIT) first gets
# 30 s of soft shutdown to finish tasks and hand unacknowledged messages back,
# instead of leaving them invisible for the whole visibility timeout.
globals().setdefault("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", 30.0)

# The cache the dashboard shares between web processes (sqs_broker.cache): the
# default local memory is per process; CACHE_URL=rediscache://127.0.0.1:6379/1,
# pymemcache://127.0.0.1:11211 or dbcache://sqs_broker_cache (after
# manage.py createcachetable) shares one SQS pass among all of them.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# The demo's ordered task goes to its FIFO queue.
CELERY_TASK_ROUTES = {"project.demo.tasks.ordered": {"queue": "demo-ordered.fifo"}}

# The dashboard's history: one sample of every queue's depth a minute (see sqs_sample).
CELERY_BEAT_SCHEDULE = {
    "sqs-broker-sample": {"task": "sqs_broker.sample_queues", "schedule": 60.0},
    # Stored bodies of large messages no message points to any more (with SQS_LARGE_PAYLOAD_BUCKET).
    "sqs-broker-sweep-payloads": {"task": "sqs_broker.sweep_payloads", "schedule": 3600.0},
}

SQS_BROKER_TELEMETRY = env.bool("SQS_BROKER_TELEMETRY", default=True)
SQS_BROKER_TELEMETRY_INTERVAL = env.float("SQS_BROKER_TELEMETRY_INTERVAL", default=10.0)
SQS_BROKER_REVOCATION_REFRESH = env.float("SQS_BROKER_REVOCATION_REFRESH", default=5.0)
SQS_BROKER_API_TOKEN = env.str("SQS_BROKER_API_TOKEN", default="") or None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"stamped": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "stamped"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # boto3 says where it found credentials on every new client: noise at INFO.
        "botocore.credentials": {"level": "WARNING"},
        # What sqs_purge and sqs_move changed is kept whatever DJANGO_LOG_LEVEL says.
        "sqs_broker.audit": {"level": "INFO"},
    },
}
