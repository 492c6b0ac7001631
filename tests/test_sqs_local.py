"""Tests of ``manage.py sqs_local`` and the stop flag it and the example's stack wait on."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from sqs_broker.localsqs import StopFlag
from tests.support import ROOT

#: A signal every 0.2 ms whose handler sets the flag while the main thread waits on it.
#: With threading.Event this dies or hangs within a second (the handler takes the lock
#: the interrupted wait() holds); the stop flag takes no lock.
SIGNAL_STORM = """
import signal, sys, time
from sqs_broker.localsqs import StopFlag
flag = StopFlag()
signal.signal(signal.SIGALRM, flag.set)
signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    flag.wait(0)
signal.setitimer(signal.ITIMER_REAL, 0)
assert flag.is_set() and flag.wait(0.01)
print("ok")
"""


def test_stop_flag__set_by_signals_while_the_main_thread_waits() -> None:
    """A storm of signals setting the flag during wait() neither hangs nor breaks the process."""
    done = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", SIGNAL_STORM], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]
    assert StopFlag().wait(0.05) is False


@pytest.mark.skipif(sys.platform != "linux", reason="process groups")
def test_sqs_local__prints_its_address_at_once_and_stops_on_two_quick_sigterms() -> None:
    """Piped output is there while it runs; SIGTERM twice (make passes one on) stops it cleanly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "AWS_"))}
    env.pop("PYTHONUNBUFFERED", None)  # a pipe is block-buffered unless the command flushes
    env.update(DJANGO_SETTINGS_MODULE="project.settings", DJANGO_SECRET_KEY="k" * 50)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sqs_local"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        text = ""
        deadline = time.monotonic() + 60
        while "Ctrl-C stops it." not in text:
            assert time.monotonic() < deadline, f"no address printed: {text!r}"
            ready, _, _ = select.select([process.stdout], [], [], 1)
            if ready:
                text += os.read(process.stdout.fileno(), 4096).decode()
            assert process.poll() is None, process.stderr.read()
        found = re.search(r"Local SQS \(moto\) on (http://127\.0\.0\.1:\d+)", text)
        assert found is not None, text
        # The server answers (an error page for a bare GET is an answer too).
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(found.group(1), timeout=5).close()  # noqa: S310 - loopback
        os.killpg(process.pid, signal.SIGTERM)
        time.sleep(0.02)
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "Local SQS stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_sqs_local__port_out_of_range_is_a_usage_error(port: str) -> None:
    """A --port no socket can have: exit 64 naming --port, before moto is started."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as refused:
        call_command("sqs_local", "--port", port, stdout=StringIO())
    assert str(refused.value) == (
        f"Error: argument --port: must be a whole number from 0 to 65535; got {port}"
    )
    assert refused.value.returncode == 64
