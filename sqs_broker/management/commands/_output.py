"""What the commands that print every N seconds share: ending quietly when the reader is gone."""

from __future__ import annotations

import os
import sys


def reader_gone() -> None:
    """After a ``BrokenPipeError`` (``sqs_stats --interval 5 | head``): no traceback at exit.

    The reader has what it wanted. Pointing standard output at /dev/null keeps
    Python from failing again when it flushes the closed pipe at exit.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
