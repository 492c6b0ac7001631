"""One moto server per test run, started before Django reads its settings.

The first process of a run starts it and exports its address; worker
subprocesses and pytest's own children inherit the address and reuse it.
"""

from __future__ import annotations

import atexit
import os

from sqs_broker.localsqs import LOCAL_ENV, LocalSQS

ADDRESS_VARIABLE = "SQS_BROKER_TEST_ENDPOINT"


def ensure() -> str:
    """The endpoint of this run's moto server, starting it if needed."""
    endpoint = os.environ.get(ADDRESS_VARIABLE)
    if not endpoint:
        server = LocalSQS().start()
        atexit.register(server.stop)
        endpoint = server.endpoint_url
        os.environ[ADDRESS_VARIABLE] = endpoint
    os.environ.update(LOCAL_ENV)
    os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-" + "k" * 40)
    os.environ["SQS_ENDPOINT_URL"] = endpoint
    return endpoint
