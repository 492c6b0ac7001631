"""A local SQS: moto's server in a subprocess on 127.0.0.1.

Used by ``manage.py sqs_local``, the example project's stack and the test
suite. It is spoken to over real HTTP, exactly as AWS would be; only the
endpoint differs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

#: Credentials moto accepts; never real ones.
LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In a child, before exec: be sent SIGTERM when the parent dies (Linux; elsewhere nothing).

    A parent killed outright (SIGKILL, an OOM kill) cannot stop its children,
    and a local SQS left behind keeps its port; the kernel can stop it instead.
    The signal follows the death of the thread that started the child, so
    start children from the main thread. Only prctl runs here: nothing that
    takes a lock, as a function run between fork and exec must.
    """
    if sys.platform != "linux":
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_process(
    process: subprocess.Popen[bytes], timeout: float = 10, sig: int = signal.SIGTERM
) -> int:
    """Send ``sig`` to a running ``process``, kill it after ``timeout`` s; its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class StopFlag:
    """A stop request a signal handler may set: a plain attribute, no lock.

    ``threading.Event.set()`` takes the lock that ``Event.wait()`` holds; a
    handler that runs in the main thread while the main thread waits on the
    same event then waits on itself for ever (two SIGTERMs in quick
    succession, as ``make`` forwarding the one sent to its process group,
    hung the stack that way). Waiting here is polling a flag.
    """

    def __init__(self) -> None:
        self._set = False

    def set(self, *_: object) -> None:
        """Ask for the stop; usable directly as a signal handler."""
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float, step: float = 0.1) -> bool:
        """Sleep until the flag is set or ``timeout`` seconds passed; whether it is set."""
        deadline = time.monotonic() + timeout
        while not self._set:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(step, left))
        return self._set


@dataclass
class LocalSQS:
    """A running moto server; stop it with :meth:`stop` or a ``with`` block."""

    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        """The URL boto3 and kombu are pointed at."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalSQS:
        """Start the server and wait until it answers; raises if it does not in ``timeout`` s."""
        try:
            import moto.server  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "moto[server] is not installed: pip install 'moto[server]' "
                "(it is sqs_broker's local extra)."
            ) from None
        self.port = self.port or free_port(self.host)
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **LOCAL_ENV},
            # Its own session: a Ctrl-C or a SIGTERM to the caller's process
            # group reaches the caller, which stops its clients before this.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own loopback server
                    f"{self.endpoint_url}/moto-api/", timeout=1
                ):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint_url} in {timeout:g} s")

    def stop(self) -> None:
        """Stop the server (safe when it is not running)."""
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def __enter__(self) -> LocalSQS:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
