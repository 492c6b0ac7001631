"""One moto server per test run: its address fixed before Django reads its settings.

:func:`address` picks the endpoint and exports it (settings read
``SQS_ENDPOINT_URL`` at import) without starting anything; :func:`ensure`
starts the server there the first time a test needs it (the ``sqs_endpoint``
session fixture in ``tests/conftest.py``). Worker subprocesses and pytest's
own children inherit the address and reuse the server.
"""

from __future__ import annotations

import atexit
import os
import socket

from sqs_broker.localsqs import LOCAL_ENV, LocalSQS, free_port

ADDRESS_VARIABLE = "SQS_BROKER_TEST_ENDPOINT"


def address() -> str:
    """The endpoint of this run's moto server, exported to the environment; nothing starts."""
    endpoint = os.environ.get(ADDRESS_VARIABLE)
    if not endpoint:
        endpoint = f"http://127.0.0.1:{free_port()}"
        os.environ[ADDRESS_VARIABLE] = endpoint
    os.environ.update(LOCAL_ENV)
    os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-" + "k" * 40)
    os.environ["SQS_ENDPOINT_URL"] = endpoint
    return endpoint


def _answers(endpoint: str) -> bool:
    host, port = endpoint.rsplit("/", 1)[-1].rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


def ensure() -> str:
    """The endpoint of this run's moto server, starting it there if nothing answers."""
    endpoint = address()
    if not _answers(endpoint):
        server = LocalSQS(port=int(endpoint.rsplit(":", 1)[1])).start()
        atexit.register(server.stop)
    return endpoint
