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
    # A profile exported for other work: left out, never used (it names no real profile).
    env["AWS_PROFILE"] = "devstack-test-profile-that-does-not-exist"
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
        assert "Left out for the local stack: AWS_PROFILE (make run AWS=1" in text, text
        assert "devstack-test-profile" not in text
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


# --- ports checked before anything starts ---------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("8010", ("127.0.0.1", 8010)),
        ("127.0.0.1:8010", ("127.0.0.1", 8010)),
        ("0.0.0.0:8000", ("0.0.0.0", 8000)),  # noqa: S104 - parsed, not bound
        ("[::1]:8000", ("::1", 8000)),
        ("localhost:8000", ("localhost", 8000)),
    ],
)
def test_web_address__as_runserver_reads_it(addr: str, expected: tuple[str, int]) -> None:
    """--addr takes what runserver takes: a port, host:port, [IPv6]:port."""
    from project.demo.management.commands.devstack import web_address

    assert web_address(addr) == expected


@pytest.mark.parametrize("addr", ["127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1", "http://x:1"])
def test_web_address__not_an_address_is_a_usage_error(addr: str) -> None:
    """A port out of 1 to 65535 or no port at all: exit 64 naming --addr, with an example."""
    from django.core.management.base import CommandError

    from project.demo.management.commands.devstack import web_address

    with pytest.raises(CommandError) as refused:
        web_address(addr)
    assert str(refused.value) == (
        f"--addr {addr!r} is not host:port or a port from 1 to 65535 (for example 127.0.0.1:8010)."
    )
    assert refused.value.returncode == 64


def test_port_in_use__a_listening_port_is_taken_a_closed_one_free() -> None:
    """Another program listening is named; a port nobody holds is free."""
    from project.demo.management.commands.devstack import port_in_use

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert port_in_use("127.0.0.1", port) == "another program listens on it"
    assert port_in_use("127.0.0.1", port) is None


@pytest.mark.parametrize("which", ["web", "sqs"])
def test_devstack__taken_port_stops_it_before_anything_is_printed(which: str) -> None:
    """Port taken: nothing printed, started or migrated; exit 2 saying how to choose another."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        web = taken if which == "web" else free_port()
        args = ["--addr", f"127.0.0.1:{web}"]
        if which == "sqs":
            args += ["--sqs-port", str(taken)]
        out = StringIO()
        with pytest.raises(CommandError) as refused:
            call_command("devstack", *args, stdout=out, stderr=StringIO())
    assert out.getvalue() == ""
    assert refused.value.returncode == 2
    if which == "web":
        other_addr = f"127.0.0.1:{taken + 10}"
        assert str(refused.value) == (
            f"The web address 127.0.0.1:{taken} cannot be used: another program listens on it. "
            f"Nothing was started. Choose another: make run ADDR={other_addr} "
            f"(or scripts/run --addr {other_addr})."
        )
    else:
        assert str(refused.value) == (
            f"The local SQS port 127.0.0.1:{taken} cannot be used: another program listens on "
            "it. Nothing was started. Choose another with --sqs-port N, or leave it out (any "
            "free port)."
        )


def test_make_run__addr_reaches_the_stack() -> None:
    """make run ADDR=... passes --addr, AWS=1 passes --aws; without them, neither is passed."""
    from tests.support import ROOT

    def recipe(*args: str) -> str:
        return subprocess.run(
            ["make", "-n", "run", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout

    def run_line(*args: str) -> str:
        return next(line for line in recipe(*args).splitlines() if "scripts/run" in line)

    assert run_line("ADDR=127.0.0.1:8010").split() == ["scripts/run", "--addr", "127.0.0.1:8010"]
    assert run_line().split() == ["scripts/run"]
    assert run_line("AWS=1").split() == ["scripts/run", "--aws"]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_devstack__port_taken_from_a_shell(tmp_path: Path) -> None:
    """scripts/run with the web port taken: one line, exit 2, nothing started, no login printed."""
    folder = fresh_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_PREFIXES)}
    env["PYTHON"] = sys.executable
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        result = subprocess.run(
            ["bash", "scripts/run", "--addr", f"127.0.0.1:{taken}"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"CommandError: The web address 127.0.0.1:{taken} cannot be")
    assert "Traceback" not in result.stderr and "password" not in result.stderr
    assert processes_in(folder) == []


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_devstack__sqs_port_out_of_range_is_a_usage_error(port: str) -> None:
    """--sqs-port no socket can have: exit 64 naming it, nothing printed or started."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(
            "devstack", "--addr", f"127.0.0.1:{free_port()}", "--sqs-port", port, stdout=out
        )
    assert (str(refused.value), refused.value.returncode) == (
        f"--sqs-port must be from 0 to 65535; got {port}.",
        64,
    )
    assert out.getvalue() == ""


def test_devstack__aws_markers_are_names_never_values() -> None:
    """What points at an account is found by name; empty variables do not count."""
    from project.demo.management.commands.devstack import aws_markers

    found = aws_markers(
        {"AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "", "SQS_REGION": "eu-west-1", "HOME": "/"}
    )
    assert found == ["AWS_PROFILE"]
