"""``manage.py sqs_local``: local SQS, a Celery worker and beat, and the web server.

With no AWS configured it starts moto's server on 127.0.0.1 and points
``SQS_ENDPOINT_URL`` at it, so everything runs on a fresh machine with no
account. With AWS configured (keys, a profile, an STS role or an explicit
endpoint) nothing local is started: only environment variables differ.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sqs_broker.localsqs import LOCAL_ENV, LocalSQS
from sqs_broker.settings import celery_conf

#: Any of these means the user chose an SQS of their own.
AWS_MARKERS = (
    "SQS_ENDPOINT_URL",
    "CELERY_BROKER_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "SQS_STS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


class Command(BaseCommand):
    help = (
        "Run the example stack: local SQS (moto) unless AWS is configured, a Celery "
        "worker, Celery beat and the development web server. Ctrl-C stops everything."
    )
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--addr", default="127.0.0.1:8000", help="Web server address (default 127.0.0.1:8000)."
        )
        parser.add_argument(
            "--sqs-port",
            type=int,
            default=0,
            help="Port of the local SQS server (default 0: any free port).",
        )
        parser.add_argument(
            "--queues",
            default="celery,demo-ordered.fifo",
            help="Queues the worker consumes (default celery,demo-ordered.fifo).",
        )
        parser.add_argument(
            "--celery-app",
            default="",
            help="Celery app for -A (default: the settings module's package, e.g. project).",
        )
        parser.add_argument(
            "--username", default="admin", help="Admin user to create or reset (default admin)."
        )
        parser.add_argument(
            "--no-demo",
            action="store_true",
            help="Do not send a demo task at start (default: send one).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        local: LocalSQS | None = None
        if not any(os.environ.get(name) for name in AWS_MARKERS):
            local = LocalSQS(port=options["sqs_port"]).start()
            # This process publishes the demo task, so boto3 here needs them too.
            os.environ.update(LOCAL_ENV)
            os.environ["SQS_ENDPOINT_URL"] = local.endpoint_url
            self.stdout.write(f"Local SQS (moto) on {local.endpoint_url}")
        else:
            self.stdout.write("AWS is configured: using it, no local SQS started.")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}

        call_command("migrate", interactive=False, verbosity=0)
        password = self._reset_admin(options["username"])

        state = Path.cwd() / ".local"
        state.mkdir(exist_ok=True)
        celery_app = options["celery_app"] or settings.SETTINGS_MODULE.split(".", 1)[0]
        python = sys.executable
        children = {
            "worker": [
                python, "-m", "celery", "-A", celery_app, "worker", "--loglevel=INFO",
                "-Q", options["queues"], "--concurrency=2",
            ],
            "beat": [
                python, "-m", "celery", "-A", celery_app, "beat", "--loglevel=INFO",
                "-s", str(state / "celerybeat-schedule"),
            ],
            "web": [python, "manage.py", "runserver", "--noreload", options["addr"]],
        }  # fmt: skip
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, argv in children.items():
                processes[name] = subprocess.Popen(argv, env=env)  # noqa: S603 - fixed argv
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nAdmin: http://{options['addr']}/admin/sqs_broker/dashboard/\n"
                    f"Log in as {options['username']!r} with password {password!r} "
                    "(new on every start).\n"
                )
            )
            if not options["no_demo"]:
                self._send_demo(env)
            self._wait(processes)
        except KeyboardInterrupt:
            self.stdout.write("Stopping...")
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            if local is not None:
                local.stop()

    def _reset_admin(self, username: str) -> str:
        """A fresh random password for the admin user, so none is ever fixed."""
        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        user, _ = user_model._default_manager.get_or_create(
            **{user_model.USERNAME_FIELD: username},
            defaults={"is_staff": True, "is_superuser": True},
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def _send_demo(self, env: dict[str, str]) -> None:
        from celery import Celery

        app = Celery("sqs-local-demo", set_as_current=False)
        app.config_from_object(celery_conf(env))
        app.conf.result_backend = getattr(settings, "CELERY_RESULT_BACKEND", None)
        result = app.send_task("project.demo.tasks.add", args=(2, 3))
        self.stdout.write(f"Sent demo task project.demo.tasks.add(2, 3): id {result.id}")
        if app.conf.result_backend:
            value = result.get(timeout=60)
            self.stdout.write(
                self.style.SUCCESS(f"Demo task processed by the worker: 2 + 3 = {value}")
            )

    def _wait(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    raise CommandError(
                        f"The {name} process exited with status {process.returncode}; "
                        "stopping the others.",
                        returncode=1,
                    )
            time.sleep(0.5)
