"""``manage.py sqs_local``: a local SQS (moto's server) for development, and nothing else.

It starts moto on 127.0.0.1, prints the environment variables that point a
worker, a web server or a shell at it, and waits until it is stopped (Ctrl-C
or SIGTERM). It creates no user, sends no task, declares no queue and writes
no file: what runs against the local SQS is the project's business.
Exit status: 0 stopped, 1 the local SQS could not start or exited, 64 a
usage error.
"""

from __future__ import annotations

import shlex
import signal
from typing import Any

from django.core.management.base import CommandError, CommandParser

from sqs_broker.localsqs import LOCAL_ENV, LocalSQS, StopFlag
from sqs_broker.management.commands._base import SqsCommand, number


class Command(SqsCommand):
    help = (
        "Start a local SQS (moto's server, from the moto[server] package) on 127.0.0.1, print "
        "the environment variables that point Celery and sqs_broker at it, and wait until "
        "stopped with Ctrl-C or SIGTERM. Exit status: 0 stopped, 1 it could not start, "
        "64 usage error."
    )
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=number(int, 0, 65535),
            default=0,
            help="Port of the local SQS server, 0 to 65535 (default 0: any free port).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = StopFlag()
        previous = {sig: signal.signal(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                server = LocalSQS(port=options["port"]).start()
            except RuntimeError as exc:
                raise CommandError(str(exc)) from None
            try:
                env = {**LOCAL_ENV, "SQS_ENDPOINT_URL": server.endpoint_url}
                self.stdout.write(f"Local SQS (moto) on {server.endpoint_url}. In another shell:\n")
                for name, value in env.items():
                    self.stdout.write(f"export {name}={shlex.quote(value)}")
                self.stdout.write("\nCtrl-C stops it.")
                self.stdout.flush()  # the address must reach a log file or a pipe now
                while not stop.wait(0.5):
                    if server.process is not None and server.process.poll() is not None:
                        raise CommandError(
                            f"The local SQS exited with status {server.process.returncode}."
                        )
            finally:
                server.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("Local SQS stopped.")
