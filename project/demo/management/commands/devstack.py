"""``manage.py devstack``: the example project's whole local stack, which ``make run`` starts.

A local SQS (moto) unless ``--aws`` (``make run AWS=1``), migrations, an ``admin`` login with a
new random password, a Celery worker, Celery beat and the web server with static
files; then a demo task whose result it prints. Ctrl-C, or SIGTERM to it or to its
process group, stops the children in order (worker, beat, web, local SQS last) and
exits 0. The children run in sessions of their own so that a signal meant for the
stack reaches them only through it, in that order; the kernel stops them should
this process be killed outright.

Before anything starts or prints, the web address (``--addr``, ``make run
ADDR=127.0.0.1:8010``) and a fixed local SQS port (``--sqs-port``) are tried:
taken, the stack does not start and says how to choose another. The admin's
address and login are printed once the web server answers on its port.

Exit status: 0 stopped, 1 a process of the stack exited on its own, 2 a port
is taken (nothing was started), 64 an address or port that is not one.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as ResultTimeout
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.commands.runserver import naiveip_re

from sqs_broker.guard import EXIT_STATUS
from sqs_broker.localsqs import LOCAL_ENV, LocalSQS, StopFlag, die_with_parent, stop_process
from sqs_broker.management.commands._base import EXIT_USAGE
from sqs_broker.settings import celery_conf

#: What points a process at an SQS or an AWS account. The stack runs on a local SQS
#: unless ``--aws`` (``make run AWS=1``) asks for the one these configure; without it they
#: are left out of the stack's environment, so a profile exported in the shell never
#: sends the demo to a real account.
AWS_MARKERS = (
    "SQS_ENDPOINT_URL",
    "CELERY_BROKER_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECRET_ACCESS_KEY_FILE",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "SQS_STS_ROLE_ARN",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


def aws_markers(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The names of :data:`AWS_MARKERS` set (non-empty) in ``environ``; never their values."""
    return [name for name in AWS_MARKERS if environ.get(name)]


#: How long each child may take to stop before it is killed: the worker gets its
#: soft shutdown (settings) plus this, so a running task can finish.
STOP_GRACE_SECONDS = 15.0


#: How long the web server may take to listen before the stack gives up on it.
WEB_START_SECONDS = 60.0


def web_address(addr: str) -> tuple[str, int]:
    """``--addr`` as runserver reads it (``8000``, ``0.0.0.0:8000``, ``[::1]:8000``)."""
    match = re.match(naiveip_re, addr)
    port = int(match["port"]) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise CommandError(
            f"--addr {addr!r} is not host:port or a port from 1 to 65535 "
            "(for example 127.0.0.1:8010).",
            returncode=EXIT_USAGE,
        )
    host = match["addr"] or "127.0.0.1"
    return (host[1:-1] if match["ipv6"] else host), port


def port_in_use(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port`` now, or None when it could.

    Binds as Django's and moto's servers do (``SO_REUSEADDR``): a port left in
    TIME_WAIT by the last run is free; one another process listens on is not.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return f"{host} is not a known address ({exc.strerror})"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "another program listens on it"
            return exc.strerror or str(exc)
    return None


def listening(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port`` (0.0.0.0: on this machine)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - compared
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def _child_setup() -> None:
    """In each child: SIGINT at its default even if ``&`` started the stack ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()


class Command(BaseCommand):
    help = (
        "Run the example stack: a local SQS (moto) unless --aws, a Celery worker, "
        "Celery beat and the web server, then a demo task. Ctrl-C or SIGTERM stops everything."
    )
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--addr",
            default="127.0.0.1:8000",
            help="Web server address, host:port or a port (default 127.0.0.1:8000; "
            "make run ADDR=127.0.0.1:8010 passes it).",
        )
        parser.add_argument(
            "--sqs-port",
            type=int,
            default=0,
            help="Local SQS port, 0 to 65535 (default 0: any free port).",
        )
        parser.add_argument(
            "--no-demo", action="store_true", help="Send no demo task (default: send one)."
        )
        parser.add_argument(
            "--aws",
            action="store_true",
            help="Run against the SQS the environment configures (keys, a profile, a role, "
            "SQS_ENDPOINT_URL) instead of a local one; make run AWS=1 passes it. Queues are "
            "created there and the demo task is sent there.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = self._check_ports(options["addr"], options["sqs_port"])
        self.stopping = StopFlag()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.stopping.set)
        local: LocalSQS | None = None
        processes: dict[str, subprocess.Popen[bytes]] = {}
        failed: str | None = None
        try:
            if not options["aws"]:
                ignored = aws_markers(os.environ)
                for name in ignored:
                    del os.environ[name]
                if ignored:
                    self.stdout.write(
                        f"Left out for the local stack: {', '.join(ignored)} "
                        "(make run AWS=1 runs against the SQS they configure)."
                    )
                local = LocalSQS(port=options["sqs_port"]).start()
                # This process publishes the demo task, so it needs them too.
                shared = {**LOCAL_ENV, "SQS_ENDPOINT_URL": local.endpoint_url}
                os.environ.update(shared)
                self.stdout.write(f"Local SQS (moto) on {local.endpoint_url}")
                # A second shell (sqs_stats, sqs_alerts, celery inspect...) needs the same.
                key_file = os.environ.get("DJANGO_SECRET_KEY_FILE")
                if key_file and not os.environ.get("DJANGO_SECRET_KEY"):
                    shared["DJANGO_SECRET_KEY_FILE"] = key_file
                self.stdout.write("For manage.py in another shell:")
                for name, value in shared.items():
                    self.stdout.write(f"  export {name}={shlex.quote(value)}")
            else:
                self.stdout.write(
                    "--aws: running against the SQS the environment configures "
                    f"({', '.join(aws_markers(os.environ)) or 'no variable: an instance role'}); "
                    "no local SQS started."
                )
            call_command("migrate", interactive=False, verbosity=0)
            password = self._reset_admin("admin")
            processes = self._start_children(options["addr"])
            if self._web_listening(host, port, processes["web"]):
                shown = f"[{host}]" if ":" in host else host
                shown = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(shown, shown)  # noqa: S104
                self.stdout.write(
                    self.style.SUCCESS(
                        f"\nAdmin: http://{shown}:{port}/admin/sqs_broker/dashboard/\n"
                        f"Log in as 'admin' with password {password!r} (new on every start).\n"
                        "Ctrl-C stops everything.\n"
                    )
                )
                if not options["no_demo"]:
                    self._demo(processes)
                failed = self._wait(processes)
            else:  # the web server exited (its error is above), or a stop was asked for
                failed = self._wait(processes, at_once=True)
        finally:
            # A second Ctrl-C must not cut the orderly stop short.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            self._stop(processes, local)
        if failed:
            raise CommandError(failed, returncode=1)
        self.stdout.write("Stopped.")

    def _check_ports(self, addr: str, sqs_port: int) -> tuple[str, int]:
        """The web address, once it and a fixed local SQS port are free; else a CommandError."""
        host, port = web_address(addr)
        if not 0 <= sqs_port <= 65535:
            raise CommandError(
                f"--sqs-port must be from 0 to 65535; got {sqs_port}.", returncode=EXIT_USAGE
            )
        why = port_in_use(host, port)
        if why is not None:
            other = f"{host}:{port + 10 if port < 65526 else 8010}"
            raise CommandError(
                f"The web address {host}:{port} cannot be used: {why}. Nothing was started. "
                f"Choose another: make run ADDR={other} (or scripts/run --addr {other}).",
                returncode=EXIT_STATUS,
            )
        if sqs_port:
            why = port_in_use("127.0.0.1", sqs_port)
            if why is not None:
                raise CommandError(
                    f"The local SQS port 127.0.0.1:{sqs_port} cannot be used: {why}. Nothing "
                    "was started. Choose another with --sqs-port N, or leave it out (any "
                    "free port).",
                    returncode=EXIT_STATUS,
                )
        return host, port

    def _web_listening(self, host: str, port: int, web: subprocess.Popen[bytes]) -> bool:
        """Wait until the web server listens: the admin's address is printed only then."""
        deadline = time.monotonic() + WEB_START_SECONDS
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if web.poll() is not None:
                return False
            if listening(host, port):
                return True
            self.stopping.wait(0.2)
        return not self.stopping.is_set() and web.poll() is None

    def _reset_admin(self, username: str) -> str:
        """The example's local login: a fresh random password, so none is ever fixed."""
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

    def _start_children(self, addr: str) -> dict[str, subprocess.Popen[bytes]]:
        state = Path(settings.BASE_DIR) / ".local"
        state.mkdir(exist_ok=True)
        python = sys.executable
        queues = ",".join(
            ["celery", *sorted({r["queue"] for r in settings.CELERY_TASK_ROUTES.values()})]
        )
        children = {
            "worker": [
                python, "-m", "celery", "-A", "project", "worker", "--loglevel=INFO",
                "-Q", queues, "--concurrency=2",
            ],
            "beat": [
                python, "-m", "celery", "-A", "project", "beat", "--loglevel=INFO",
                "-s", str(state / "celerybeat-schedule"),
            ],
            # --insecure: serve the admin's static files with DEBUG off, as
            # runserver does only on request; a real deployment uses collectstatic.
            "web": [python, "manage.py", "runserver", "--noreload", "--insecure", addr],
        }  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        processes: dict[str, subprocess.Popen[bytes]] = {}
        for name, argv in children.items():
            processes[name] = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                cwd=settings.BASE_DIR,
                env=env,
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        return processes

    def _demo(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        # Settings were read before the local SQS existed: the project's app
        # points at AWS in this process, so publish with the environment now.
        app = Celery("devstack-demo", set_as_current=False)
        app.config_from_object(celery_conf(os.environ))
        app.conf.result_backend = settings.CELERY_RESULT_BACKEND
        result = app.send_task("project.demo.tasks.add", args=(2, 3))
        self.stdout.write(f"Sent the demo task project.demo.tasks.add(2, 3): id {result.id}")
        deadline = time.monotonic() + 120
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes.values()):
                return  # _wait() reports which one.
            try:
                value = result.get(timeout=0.5, interval=0.2)
            except ResultTimeout:
                continue
            self.stdout.write(self.style.SUCCESS(f"Demo task run by the worker: 2 + 3 = {value}"))
            return
        if not self.stopping.is_set():
            self.stdout.write(
                self.style.WARNING("The demo task has no result after 120 s: see the worker's log.")
            )

    def _wait(
        self, processes: dict[str, subprocess.Popen[bytes]], at_once: bool = False
    ) -> str | None:
        """Until a stop is asked for (None) or a child exits on its own (what to report).

        ``at_once``: look once, without waiting (a stop asked for is then None too).
        """
        while at_once or not self.stopping.wait(0.5):
            for name, process in processes.items():
                if process.poll() is not None:
                    return (
                        f"The {name} process exited with status {process.returncode}; "
                        "the others were stopped."
                    )
            if at_once:
                return None
        return None

    def _stop(self, processes: dict[str, subprocess.Popen[bytes]], local: LocalSQS | None) -> None:
        if processes or local is not None:
            self.stdout.write("Stopping: worker, beat, web server, then the local SQS...")
        soft = float(getattr(settings, "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT", 0) or 0)
        for name in ("worker", "beat", "web"):
            if name in processes:
                grace = STOP_GRACE_SECONDS + (soft if name == "worker" else 0)
                stop_process(processes[name], timeout=grace)
        if local is not None:
            local.stop()
