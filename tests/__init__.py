"""The test suite of sqs_broker and the example project.

A shell that starts a command with ``&`` (``nohup make test &``, many CI
runners) hands it SIGINT and SIGQUIT ignored, and an ignored disposition
survives exec into every subprocess. The tests send those signals to workers
and commands they start, so the defaults are restored here, before anything
is started: the suite behaves the same however it was launched.
"""

from __future__ import annotations

import signal

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
