"""A fast SQS-compatible server for throughput benchmarks: ``local-aws-sqs`` on Node.js.

moto drains about 40 messages a second, too slow to show what a worker's
polling costs or gains. ``local-aws-sqs`` (npm, MIT, two small dependencies)
speaks SQS's JSON protocol, as boto3 and kombu 5.7 do, and runs on the
Node.js that Debian ships (``fauxqs``, the other candidate, needs Node.js
22.5 for ``node:sqlite``). It is installed on first use with ``npm install``
into ``.local/sqs-server/`` (git-ignored); the tests never use it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqs_broker.localsqs import LOCAL_ENV, free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "local-aws-sqs@2.0.2"
HOME = ROOT / ".local" / "sqs-server"

_SERVER = """
const {createSqsServer} = require("local-aws-sqs");
createSqsServer({port: Number(process.argv[1]), hostname: "127.0.0.1",
                 emulateQueueCreationLifecycle: false})
  .then(() => console.log("listening"));
"""


def install() -> Path:
    """The package's directory, running ``npm install`` the first time."""
    module = HOME / "node_modules" / "local-aws-sqs"
    if module.exists():
        return HOME
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError(
            "The backlog benchmark needs Node.js and npm: apt-get install nodejs npm"
        )
    HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - fixed argv
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(HOME), PACKAGE],
        check=True,
        capture_output=True,
    )
    return HOME


@contextmanager
def fast_sqs() -> Iterator[str]:
    """A running ``local-aws-sqs`` on a free loopback port; its endpoint URL."""
    home = install()
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [shutil.which("node") or "node", "-e", _SERVER, str(port)],
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **LOCAL_ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()  # noqa: S310 - loopback
                break
            except urllib.error.HTTPError:
                break  # it answers (with an error for a bare GET): it is up
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("local-aws-sqs did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        stop_process(process)
