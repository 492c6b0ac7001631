"""The scheme kombu shows for each SQS transport: ``sqs-broker://`` for the project's, ``sqs://``.

``CELERY_BROKER_TRANSPORT`` holds a class's path (``sqs_broker.settings.TRANSPORTS``),
which kombu would show as the URL's scheme, in the worker's and beat's banners and
``celery inspect stats`` (``sqs_broker.transport:Transport://localhost//``), unless
``kombu.connection.resolve_aliases`` names it. Each label is a kombu transport alias
of the same class too, so a connection rebuilt from what kombu shows (a pickled one)
keeps its transport. :mod:`sqs_broker.settings` registers them when imported: every
process whose settings call ``include()`` has them.
"""

from __future__ import annotations

from kombu import connection, transport

#: Transport class path -> the scheme kombu shows for it (and an alias selecting it).
LABELS = {
    "sqs_broker.transport:Transport": "sqs-broker",
    "kombu.transport.SQS:Transport": "sqs",
}


def register() -> None:
    """Make kombu show and resolve :data:`LABELS` (kombu's own entries are kept)."""
    for path, label in LABELS.items():
        transport.TRANSPORT_ALIASES.setdefault(label, path)
        connection.resolve_aliases.setdefault(path, label)
