"""This run's moto server: its address fixed before Django reads its settings.

:func:`address` picks the endpoint and exports it (settings read
``SQS_ENDPOINT_URL`` at import) without starting anything; :func:`ensure`
starts the server there the first time a test needs it (the ``sqs_endpoint``
session fixture in ``tests/conftest.py``). Worker subprocesses and pytest's
own children inherit the address and reuse the server; each pytest-xdist
worker process picks an address and starts a server of its own.

:class:`Tripwire` is the endpoint of the tests that declare no SQS: it
answers nothing and counts who called, so such a test fails whatever ran
before it, instead of passing on a server another test started.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading

from sqs_broker.localsqs import LOCAL_ENV, LocalSQS, free_port

ADDRESS_VARIABLE = "SQS_BROKER_TEST_ENDPOINT"
#: The pytest-xdist worker id ("" outside xdist) of the process that chose the address.
OWNER_VARIABLE = "SQS_BROKER_TEST_ENDPOINT_OWNER"


def address() -> str:
    """The endpoint of this run's moto server, exported to the environment; nothing starts."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    endpoint = os.environ.get(ADDRESS_VARIABLE)
    owner = os.environ.get(OWNER_VARIABLE)
    if not endpoint or (owner is not None and owner != worker):
        # None yet, or inherited from the xdist controller: one server per test process.
        endpoint = f"http://127.0.0.1:{free_port()}"
        os.environ[ADDRESS_VARIABLE] = endpoint
    os.environ[OWNER_VARIABLE] = worker
    os.environ.update(LOCAL_ENV)
    os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-" + "k" * 40)
    os.environ["SQS_ENDPOINT_URL"] = endpoint
    return endpoint


def host_port(endpoint: str) -> tuple[str, int]:
    """``("127.0.0.1", 4566)`` of ``http://127.0.0.1:4566``."""
    host, port = endpoint.split("://", 1)[-1].rstrip("/").rsplit(":", 1)
    return host, int(port)


def _answers(endpoint: str) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(host_port(endpoint)) == 0


def ensure() -> str:
    """The endpoint of this run's moto server, starting it there if nothing answers."""
    endpoint = address()
    if not _answers(endpoint):
        server = LocalSQS(port=host_port(endpoint)[1]).start()
        atexit.register(server.stop)
    return endpoint


class Tripwire:
    """A loopback port that closes every connection at once and counts them.

    A request sent there fails fast (the connection closes before any answer),
    and :attr:`contacts` tells the test's teardown that something tried.
    """

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._lock = threading.Lock()
        self._contacts = 0
        threading.Thread(target=self._serve, name="sqs-tripwire", daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    @property
    def contacts(self) -> int:
        with self._lock:
            return self._contacts

    def reset(self) -> None:
        with self._lock:
            self._contacts = 0

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            # Counted before the caller sees the close, so its test's teardown sees it.
            with self._lock:
                self._contacts += 1
            connection.close()
