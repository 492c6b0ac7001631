"""A second SQS and S3, neither of them moto: ``local-aws-sqs`` and ``s3rver`` on Node.js.

The large-message path is tested on moto (SQS and S3 on one port) and, to
catch what only moto tolerates, on these two servers from the npm registry:
``local-aws-sqs`` (SQS's JSON protocol, as boto3 and kombu 5.7 speak it; the
backlog benchmark's server too) and ``s3rver`` (S3's REST API with signature
checks, objects on disk). Both run on the Node.js Debian ships. :func:`install`
puts the pinned versions into ``.local/node-aws/`` (git-ignored) with ``npm
install`` the first time; nothing else installs them. Without Node.js or npm,
or when the install fails, :func:`servers` skips the test outside CI and fails
it in CI (``CI=true``): ``SQS_BROKER_NODE=1 scripts/bootstrap`` installs
Debian's ``nodejs`` and ``npm``, as ``scripts/test`` does.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sqs_broker.localsqs import LOCAL_ENV, die_with_parent, free_port, stop_process
from tests.support import ROOT

PACKAGES = ("local-aws-sqs@2.0.2", "s3rver@3.7.1")
HOME = ROOT / ".local" / "node-aws"

_SQS = """
const {createSqsServer} = require("local-aws-sqs");
createSqsServer({port: Number(process.argv[1]), hostname: "127.0.0.1",
                 emulateQueueCreationLifecycle: false})
  .then(() => console.log("listening"));
"""

# s3rver checks signatures against the key pairs of its one account, which
# knows only S3RVER/S3RVER: the local credentials every test process uses are added.
_S3 = """
const S3rver = require("s3rver");
const {DUMMY_ACCOUNT} = require("s3rver/lib/models/account");
DUMMY_ACCOUNT.createKeyPair(process.argv[3], process.argv[4]);
new S3rver({port: Number(process.argv[1]), address: "127.0.0.1", silent: true,
            directory: process.argv[2]})
  .run().then(() => console.log("listening"));
"""


@dataclass(frozen=True)
class Servers:
    """The endpoints of the running pair."""

    sqs: str
    s3: str


def _unavailable(reason: str) -> None:
    message = f"the Node.js SQS and S3 servers are unavailable: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (SQS_BROKER_NODE=1 scripts/bootstrap installs Node.js and npm)")
    pytest.skip(message)


def _installed() -> bool:
    return all((HOME / "node_modules" / p.rsplit("@", 1)[0]).exists() for p in PACKAGES)


def install() -> Path:
    """The folder holding both packages, running ``npm install`` the first time.

    Test processes of several legs may get here at once: a lock file lets one install.
    """
    if _installed():
        return HOME
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        _unavailable("node or npm is not installed")
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            return HOME
        done = subprocess.run(  # noqa: S603 - fixed argv
            [str(npm), "install", "--no-audit", "--no-fund", "--prefix", str(HOME), *PACKAGES],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        _unavailable(f"npm install failed: {(done.stderr or done.stdout)[-500:]}")
    return HOME


def _start(script: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [shutil.which("node") or "node", "-e", script, str(port), *args],
        cwd=HOME,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **LOCAL_ENV},
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - a test server dies with its test
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()  # noqa: S310 - loopback
            return process, endpoint
        except urllib.error.HTTPError:
            return process, endpoint  # it answers (an error for a bare GET): it is up
        except (urllib.error.URLError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                _unavailable(f"node -e ... {port} did not start")
            time.sleep(0.1)


@contextmanager
def servers(data: Path) -> Iterator[Servers]:
    """``local-aws-sqs`` and ``s3rver`` (its objects in ``data``) on free loopback ports."""
    install()
    sqs_process, sqs = _start(_SQS)
    try:
        s3_process, s3 = _start(
            _S3, str(data), LOCAL_ENV["AWS_ACCESS_KEY_ID"], LOCAL_ENV["AWS_SECRET_ACCESS_KEY"]
        )
        try:
            yield Servers(sqs, s3)
        finally:
            stop_process(s3_process)
    finally:
        stop_process(sqs_process)
