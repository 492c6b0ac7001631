"""The example stack (``make run``) from a fresh copy, stopped as systemd would stop it."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sqs_broker.localsqs import free_port
from tests.support.files import fresh_copy

pytestmark = pytest.mark.worker

#: Variables a fresh machine does not have; the stack must run without any.
PROJECT_PREFIXES = ("DJANGO_", "SQS_", "AWS_", "CELERY_", "DATABASE_")


def wait_for(log: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        if process.poll() is not None:
            raise AssertionError(f"the stack exited with {process.returncode}:\n{text[-4000:]}")
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not seen in {timeout} s:\n{log.read_text()[-4000:]}")


def processes_in(folder: Path) -> list[str]:
    """Command lines of the processes whose working directory is inside ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd == str(folder) or cwd.startswith(f"{folder}/"):
            found.append(f"{proc.name}: {cmdline}")
    return found


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def log_in(base: str, password: str) -> urllib.request.OpenerDirector:
    """An opener holding the admin session of ``admin`` / ``password``."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/admin/login/", timeout=10).read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode(
        {"username": "admin", "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"}
    )
    opener.open(request, timeout=10).read()
    return opener


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_devstack__fresh_copy_runs_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """No project variable set: demo result, static files, the login; SIGTERM leaves nothing."""
    folder = fresh_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_PREFIXES)}
    env.pop("PYTHONUNBUFFERED", None)  # as on a user's machine: output to a file is buffered
    env["PYTHON"] = sys.executable
    web, sqs_port = free_port(), free_port()
    log = tmp_path / "stack.log"
    with log.open("wb") as out:
        stack = subprocess.Popen(
            ["bash", "scripts/run", "--addr", f"127.0.0.1:{web}", "--sqs-port", str(sqs_port)],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        text = wait_for(log, r"Demo task run by the worker: 2 \+ 3 = 5", stack, timeout=120)
        password = re.search(r"Log in as 'admin' with password '([^']+)'", text)
        assert password is not None, text
        base = f"http://127.0.0.1:{web}"
        css = f"{base}/static/admin/css/base.css"
        with urllib.request.urlopen(css, timeout=10) as answer:  # noqa: S310 - loopback
            assert answer.status == 200
        opener = log_in(base, password.group(1))
        page = opener.open(f"{base}/admin/sqs_broker/dashboard/", timeout=30).read().decode()
        assert 'id="sqs-queues"' in page
        assert "local SQS at 127.0.0.1" in page  # the example's environment banner
        assert (folder / ".local" / "secret_key").stat().st_mode & 0o077 == 0
        # The exports it printed are enough for manage.py in a second shell.
        exported = dict(
            shlex.split(line.split("export ", 1)[1])[0].split("=", 1)
            for line in text.splitlines()
            if line.startswith("  export ")
        )
        assert {"SQS_ENDPOINT_URL", "DJANGO_SECRET_KEY_FILE"} <= set(exported), text
        second = subprocess.run(
            [sys.executable, "manage.py", "sqs_stats", "--offline"],
            cwd=folder,
            env={**env, **exported},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 0, second.stderr[-2000:]
        assert json.loads(second.stdout)["queues"], second.stdout[:500]

        # Twice in quick succession, as when make passes on the SIGTERM its group got:
        # a handler that took a lock the waiting main thread held hung the stack.
        os.killpg(stack.pid, signal.SIGTERM)
        time.sleep(0.02)
        os.killpg(stack.pid, signal.SIGTERM)
        assert stack.wait(timeout=90) == 0
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output[-4000:]
    assert "Stopped." in output
    # Children have their own sessions; none may outlive the stack.
    deadline = time.monotonic() + 10
    while processes_in(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_in(folder) == []
    assert port_is_free(web) and port_is_free(sqs_port)
