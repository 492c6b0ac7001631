"""Models of the sqs_broker app."""

from __future__ import annotations
